"""The credentials every test service runs with, and the headers each kind of caller sends."""

from __future__ import annotations

from livecoupon.api.auth import Credentials

CREDENTIALS = Credentials(api_key="test-operator-key", platform_key="test-platform-key",
                          viewer_secret="test-viewer-secret-of-at-least-32-bytes")
API_KEY = CREDENTIALS.api_key
OPERATOR = {"X-API-Key": CREDENTIALS.api_key}
PLATFORM = {"X-API-Key": CREDENTIALS.platform_key}
ENV = {"LIVECOUPON_API_KEY": CREDENTIALS.api_key, "LIVECOUPON_PLATFORM_KEY": CREDENTIALS.platform_key,
       "LIVECOUPON_VIEWER_SECRET": CREDENTIALS.viewer_secret}


def viewer_token(user: str, seconds: int = 3600) -> str:
    return CREDENTIALS.viewer_token(user, seconds)


def viewer(user: str) -> dict[str, str]:
    """The headers of ``user``'s own app: their viewer token."""
    return {"Authorization": f"Bearer {viewer_token(user)}"}
