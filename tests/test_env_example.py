"""`.env.example` documents every setting there is, and nothing that is not one."""

from __future__ import annotations

import re
from pathlib import Path

from shared.settings import ENV_PREFIX, Settings

EXAMPLE = Path(__file__).parent.parent / ".env.example"


def test_env_example_lists_every_setting() -> None:
    listed = set(re.findall(rf"^({ENV_PREFIX}[A-Z0-9_]+)=", EXAMPLE.read_text(), re.MULTILINE))
    expected = {ENV_PREFIX + field.upper() for field in Settings.__struct_fields__}
    assert listed == expected
