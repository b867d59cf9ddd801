"""The browser helper fails a test, saying what to install, when Chromium is
missing or cannot start: a browser test never passes or skips without one."""

import shutil

import pytest

from tests.browser import chromium


def _which_but(missing: str, replacement: str | None):
    real = shutil.which

    def which(name: str) -> str | None:
        return replacement if name == missing else real(name)

    return which


def test_a_missing_chromium_fails_the_test_naming_the_packages(monkeypatch, tmp_path):
    monkeypatch.setattr("tests.browser.shutil.which", _which_but("chromium", None))

    with (
        pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"),
        chromium(tmp_path / "driver.log"),
    ):
        pass


def test_a_browser_that_cannot_start_fails_the_test_with_the_reason(
    monkeypatch, tmp_path
):
    monkeypatch.setattr(
        "tests.browser.shutil.which", _which_but("chromium", "/bin/false")
    )

    with (
        pytest.raises(pytest.fail.Exception, match="Chromium did not start"),
        chromium(tmp_path / "driver.log"),
    ):
        pass
