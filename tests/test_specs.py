import hashlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("path", "digest"),
    [
        (
            "backend/commerce_context/emulator/schema.sdl",
            "60aa0c8d256aefb9092137edcb68d8f163c3d563d6a1228270f93fa532e16ab1",
        ),
        (
            "tests/specs/openapi.yaml",
            "fa40c530bdeb409ad3262e1a3d5078af46793885faec8e89490c512eb4f82cee",
        ),
    ],
)
def test_vendored_specs_are_the_official_ones(path: str, digest: str) -> None:
    assert hashlib.sha256((ROOT / path).read_bytes()).hexdigest() == digest
