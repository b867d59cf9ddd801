"""The dashboard in a real browser: headless Chromium signs in as an operator
through the admin's login page, as a person would, and watches two real
rotation workers drain a backlog: slices of both members on the timeline, lag
falling in the lane table, and the page's Pause, Resume and Retry buttons
taking effect in the database and in the rotation.

Nothing is timed: every wait polls the page or the database with a generous
timeout, because the machine is shared and slow at times. Set
DASHBOARD_SCREENSHOT=docs/dashboard.png to keep the screenshot the test takes
(the README shows one made so).
"""

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import NoSuchElementException, WebDriverException
from selenium.webdriver.common.by import By

from tasks_app.models import TaskEvent, TaskStatus, Topic
from tasks_app.roles import Role
from tests.browser import chromium
from tests.cluster import running_cluster, settle, wait_for, worker_database_url
from tests.factories import UserFactory
from tests.rotation_support import make_topic, submit
from tests.web_server import gunicorn

pytestmark = pytest.mark.django_db(transaction=True)

WORKERS = ("w1", "w2")
PASSWORD = "pw-for-tests-1"
# 10 ms of handler time a task: topic A holds 20 s of work, so it still has a
# backlog when the test pauses it, however fast the machine.
SLEEP_MS = 10
BACKLOG_A = 2000
BACKLOG_B = 600
DYING = 2  # tasks of B that fail on their only attempt, for the Retry button
SLICE_MS = 300
WAIT_S = 90.0
SCREENSHOT_ENV = "DASHBOARD_SCREENSHOT"


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[tuple]:
    """Two rotation workers, the publisher, beat, and gunicorn with DEBUG on as
    in `make dev` (static files from the apps, cookies over plain HTTP)."""
    with django_db_blocker.unblock():
        env = {**os.environ, "DATABASE_URL": worker_database_url()}
    logs = tmp_path_factory.mktemp("dashboard")
    with (
        running_cluster(env, logs, WORKERS) as cluster,
        gunicorn({**env, "DEBUG": "1"}, logs / "server.log") as url,
    ):
        yield cluster, url


class DashboardPage:
    """What the test reads from and does on the page, through the DOM."""

    def __init__(self, driver, url: str):
        self.driver = driver
        self.url = url

    def sign_in(self, username: str) -> None:
        """Open the dashboard (1-minute window); sign in where it sends us."""
        self.driver.get(f"{self.url}/dashboard/?window=60")
        self.driver.find_element(By.ID, "id_username").send_keys(username)
        self.driver.find_element(By.ID, "id_password").send_keys(PASSWORD)
        self.driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        wait_for(self.refreshes, timeout_s=WAIT_S, what="the dashboard's first data")

    def _js(self, script: str, *args: object) -> Any:
        return self.driver.execute_script(script, *args)

    def refreshes(self) -> int:
        return int(
            self._js("return document.getElementById('rotation')?.dataset.refreshes")
            or 0
        )

    def after_refreshes(self, count: int) -> None:
        start = self.refreshes()
        wait_for(
            lambda: self.refreshes() >= start + count,
            timeout_s=WAIT_S,
            what=f"{count} refreshes of the page",
        )

    def lane(self, lane: str) -> list | None:
        """Return [lag, holder] as the lane table shows them, or None."""
        return self._js(
            "const row = document.querySelector("
            " `#lanes tr[data-key='${arguments[0]}']`);"
            "return row && [Number(row.querySelector('td.lag').dataset.value),"
            " row.querySelector('td.holder').textContent];",
            lane,
        )

    def timeline_members(self) -> set[str]:
        return set(
            self._js(
                "return [...document.querySelectorAll('#timeline rect[data-member]')]"
                ".map((bar) => bar.dataset.member);"
            )
        )

    def screenshot(self, path: Path) -> None:
        """Save the page down to its last panel as a PNG (Chrome's own capture,
        clipped); keep a copy where DASHBOARD_SCREENSHOT says."""
        width, bottom = self._js(
            "const box = document.getElementById('rotation').getBoundingClientRect();"
            "return [document.documentElement.clientWidth, Math.ceil(box.bottom) + 16];"
        )
        clip = {"x": 0, "y": 0, "width": width, "height": bottom, "scale": 1}
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "clip": clip}
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        if os.environ.get(SCREENSHOT_ENV):
            shutil.copyfile(path, os.environ[SCREENSHOT_ENV])

    def press(self, action: str, **target: str) -> bool:
        """Click the action's button for the target; False if not (yet) shown."""
        ((name, value),) = target.items()
        selector = f"button[data-action='{action}'][data-{name}='{value}']"
        try:
            self.driver.find_element(By.CSS_SELECTOR, selector).click()
        except (NoSuchElementException, WebDriverException):
            return False
        return True


def _falling_lag(page: DashboardPage, lane: str, readings: int) -> list[int]:
    """Collect the lane's distinct lag readings until `readings` were seen."""
    seen: list[int] = []

    def more() -> bool:
        shown = page.lane(lane)
        if shown and (not seen or shown[0] != seen[-1]):
            seen.append(shown[0])
        return len(seen) >= readings

    wait_for(
        more, timeout_s=WAIT_S, what=f"the lag of {lane} to change", interval_s=0.2
    )
    return seen


def _stopped_lag(page: DashboardPage, lane: str) -> int:
    """Wait until the lane has no holder and its lag held still over a refresh."""

    def steady() -> tuple[int] | None:
        before = page.lane(lane)
        page.after_refreshes(1)
        after = page.lane(lane)
        if after is None:
            return None
        held = after[1] not in ("", "—")
        return None if held or before != after else (after[0],)

    return wait_for(steady, timeout_s=WAIT_S, what=f"{lane} to stop")[0]


def _flag(name: str) -> bool:
    return Topic.objects.get(name=name).paused


def test_an_operator_watches_two_members_drain_a_backlog_and_pauses_a_lane(
    stack, topic_name, tmp_path, settings
):
    cluster, url = stack
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    operator = UserFactory(role=Role.OPERATOR)
    a, b = f"{topic_name}-a", f"{topic_name}-b"
    make_topic(a, slice_ms=SLICE_MS, weight=2, paused=True)
    make_topic(b, slice_ms=SLICE_MS, paused=True, max_attempts=1)
    submit(a, [{"sleep_ms": SLEEP_MS}] * BACKLOG_A)
    dying = submit(b, [{"fail_attempts": 1}] * DYING)
    submit(b, [{"sleep_ms": SLEEP_MS}] * BACKLOG_B)
    lane_a = f"default/{a}/0"

    with chromium(tmp_path / "chromedriver.log") as driver:
        page = DashboardPage(driver, url)
        page.sign_in(operator.username)
        wait_for(
            lambda: (page.lane(lane_a) or [0])[0] == BACKLOG_A,
            timeout_s=WAIT_S,
            what="the published backlog to show as lag",
        )

        for topic in (a, b):
            wait_for(
                lambda t=topic: page.press("resume", topic=t),
                timeout_s=WAIT_S,
                what=f"Resume {topic}",
            )
        wait_for(
            lambda: not (_flag(a) or _flag(b)), timeout_s=WAIT_S, what="the resumes"
        )
        lags = _falling_lag(page, lane_a, readings=3)
        both = {cluster.node(name) for name in WORKERS}
        wait_for(
            lambda: both <= page.timeline_members(),
            timeout_s=WAIT_S,
            what="slices of both members",
        )

        wait_for(
            lambda: page.press("pause", topic=a), timeout_s=WAIT_S, what=f"Pause {a}"
        )
        wait_for(lambda: _flag(a), timeout_s=WAIT_S, what=f"{a} to be paused")
        stopped = _stopped_lag(page, lane_a)
        page.after_refreshes(2)
        still = page.lane(lane_a)

        wait_for(
            lambda: page.press("resume", topic=a),
            timeout_s=WAIT_S,
            what=f"Resume {a} again",
        )
        wait_for(lambda: not _flag(a), timeout_s=WAIT_S, what=f"{a} to run again")
        wait_for(
            lambda: page.lane(lane_a)[0] < stopped,
            timeout_s=WAIT_S,
            what=f"{lane_a} to move again",
        )

        wait_for(
            lambda: page.press("retry", task=str(dying[0].uuid)),
            timeout_s=WAIT_S,
            what="Retry on a dead task",
        )
        wait_for(
            lambda: (
                TaskEvent.objects.filter(
                    task=dying[0], status=TaskStatus.PENDING
                ).count()
                == 2
            ),
            timeout_s=WAIT_S,
            what="the dead task to be accepted again",
        )
        page.after_refreshes(2)
        page.screenshot(tmp_path / "dashboard.png")

    settle(cluster)
    assert lags == sorted(set(lags), reverse=True), f"lag must only fall: {lags}"
    assert 0 < stopped < BACKLOG_A
    assert still == [stopped, "—"], "a paused lane got a turn"
