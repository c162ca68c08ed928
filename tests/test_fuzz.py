"""A short schemathesis run inside `make test` (the long one is `make fuzz`): no 5xx, and every
status code, content type and body as /openapi.json documents it."""

from __future__ import annotations

from pathlib import Path

from tests import fuzz


def test_schemathesis_finds_no_5xx_and_no_schema_mismatch(tmp_path: Path) -> None:
    args = fuzz.parser().parse_args(["--max-examples", "4", "--phases", "fuzzing",
                                     "--seed", "20260101", "--dir", str(tmp_path)])
    assert fuzz.run(args) == 0, f"see the schemathesis output above and {tmp_path}/daemon.log"
