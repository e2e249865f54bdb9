"""Where the vendored API descriptions and recorded payloads live (see tests/fixtures)."""

from __future__ import annotations

from pathlib import Path

VENDOR_API = Path(__file__).resolve().parent / "fixtures" / "vendor-api"
