"""Parse the config text and point each error at the file and line it is about."""

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks_app.errors import InvalidInput

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_TOML_AT_END = " (at end of document)"


class ConfigError(InvalidInput):
    """The scheduler config file cannot be read or breaks the schema."""


class Source:
    """The file's text, kept because tomllib reports no positions after parsing."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.text = text
        self.lines = text.splitlines()

    def error(self, line: int | None, message: str) -> ConfigError:
        """Build an error that reads "<file>, line N: <what is wrong>"."""
        where = f"{self.path}, line {line}" if line else str(self.path)
        return ConfigError(f"{where}: {message}", field="config", line=line)

    def parse(self) -> dict[str, Any]:
        """Parse the TOML, restating the parser's complaint with file and line."""
        try:
            return tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            found = _TOML_POSITION.search(message)
            if found is None:
                what = message.replace(_TOML_AT_END, "")
                raise self.error(len(self.lines), f"{what} (at the end)") from exc
            what = f"{message[: found.start()]} (column {found.group(2)})"
            raise self.error(int(found.group(1)), what) from exc

    def top_line(self, key: str) -> int | None:
        """Find the first line that assigns `key` or opens a table named by it."""
        pattern = re.compile(rf"^\s*\[*\s*[\"']?{re.escape(key)}[\"']?\s*[=\].]")
        return next(
            (n for n, line in enumerate(self.lines, 1) if pattern.match(line)), None
        )

    def key_line(self, header: str, index: int, key: str | None) -> int | None:
        """Find `key` in the index-th `header` table, else that table's header.

        Tables written inline (`topics = [{...}]`) fall back to the line that
        assigns them.
        """
        headers = [n for n, line in enumerate(self.lines) if _header_of(line)]
        mine = [n for n in headers if _header_of(self.lines[n]) == header]
        if index >= len(mine):
            return self.top_line(header.strip("[]"))
        begin = mine[index]
        end = next((n for n in headers if n > begin), len(self.lines))
        if key is not None:
            pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
            for n in range(begin + 1, end):
                if pattern.match(self.lines[n]):
                    return n + 1
        return begin + 1


def _header_of(line: str) -> str:
    """Return a table header such as `[[topics]]` without spaces, or ''."""
    code = line.split("#", 1)[0].strip()
    return code.replace(" ", "") if code.startswith("[") and code.endswith("]") else ""


@dataclass(frozen=True)
class Table:
    """One table of the file, named the way errors should name it."""

    source: Source
    header: str
    index: int
    label: str

    def error(self, key: str | None, message: str) -> ConfigError:
        """Build an error at the line of `key` in this table."""
        line = self.source.key_line(self.header, self.index, key)
        return self.source.error(line, f"{self.label}: {message}")
