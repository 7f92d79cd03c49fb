"""On-screen CAPTCHA challenges with an audio alternative (the `captcha` package).

A challenge is a random id with a digit answer in the store. The image and the audio
read the same digits; answering deletes the challenge, right or wrong (one answer per
challenge), and challenges expire after `web.captcha_lifetime` seconds.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime, timedelta

from captcha.audio import AudioCaptcha
from captcha.image import ImageCaptcha

from postel.web.state import Web

_image = ImageCaptcha(width=240, height=80)
_audio = AudioCaptcha()


class TooManyChallenges(Exception):
    pass


def new_challenge(web: Web, ip: str) -> str:
    """Blocking: create a challenge and return its id (TooManyChallenges past the
    per-IP limit, so nobody fills the store with challenges)."""
    if web.captcha_by_ip.add(ip) > web.captcha_max_per_ip:
        raise TooManyChallenges()
    length = max(4, min(web.config.captcha_length, 12))
    answer = "".join(secrets.choice("0123456789") for _ in range(length))
    challenge_id = secrets.token_urlsafe(18)
    expires = datetime.now(UTC) + timedelta(seconds=web.config.captcha_lifetime)
    web.store.web.captcha_create(challenge_id, answer, expires)
    return challenge_id


def _valid_id(challenge_id: str) -> bool:
    return 0 < len(challenge_id) <= 64


def image(web: Web, challenge_id: str) -> bytes | None:
    answer = web.store.web.captcha_get(challenge_id) if _valid_id(challenge_id) else None
    return _image.generate(answer, format="png").getvalue() if answer else None


def audio(web: Web, challenge_id: str) -> bytes | None:
    answer = web.store.web.captcha_get(challenge_id) if _valid_id(challenge_id) else None
    return bytes(_audio.generate(answer)) if answer else None


def answer_for_tests(web: Web, challenge_id: str) -> str | None:
    """Only reachable when web.test_hooks is on (loopback-only servers)."""
    return web.store.web.captcha_get(challenge_id) if _valid_id(challenge_id) else None


def solve(web: Web, challenge_id: str, answer: str) -> bool:
    """Blocking: spend the challenge; True when `answer` was right and in time."""
    if not _valid_id(challenge_id):
        return False
    expected = web.store.web.captcha_take(challenge_id)
    given = "".join(answer.split())
    return expected is not None and hmac.compare_digest(expected.encode(), given.encode())
