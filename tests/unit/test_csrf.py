"""CSRF tokens of the dashboard's check-in form: bound to the user, signed, expiring."""

from __future__ import annotations

from okrsync.web.csrf import Csrf


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_fresh_token_is_valid_for_its_user() -> None:
    """A token issued for a user passes the check for that user."""
    csrf = Csrf(b"k" * 32)
    assert csrf.problem(csrf.issue("dana"), "dana") is None


def test_a_token_of_another_user_is_refused() -> None:
    """A token issued for one user is refused for another."""
    csrf = Csrf(b"k" * 32)
    assert csrf.problem(csrf.issue("dana"), "eve") is not None


def test_missing_malformed_and_forged_tokens_are_refused() -> None:
    """No token, a token without a signature, and one signed by another secret all fail."""
    csrf = Csrf(b"k" * 32)
    assert csrf.problem(None, "dana") == "the form carried no CSRF token"
    assert csrf.problem("", "dana") == "the form carried no CSRF token"
    assert "malformed" in (csrf.problem("abc.def", "dana") or "")
    assert "malformed" in (csrf.problem("1800000000", "dana") or "")
    other = Csrf(b"x" * 32)
    assert "not valid" in (csrf.problem(other.issue("dana"), "dana") or "")


def test_a_changed_timestamp_breaks_the_signature() -> None:
    """Moving the issue time of a token (to extend it) invalidates it."""
    clock = Clock()
    csrf = Csrf(b"k" * 32, clock=clock)
    issued, signature = csrf.issue("dana").split(".")
    assert csrf.problem(f"{int(issued) + 3600}.{signature}", "dana") is not None


def test_tokens_expire_after_max_age() -> None:
    """A token is valid up to max_age_s after it was issued and refused after."""
    clock = Clock()
    csrf = Csrf(b"k" * 32, max_age_s=600, clock=clock)
    token = csrf.issue("dana")
    clock.now += 600
    assert csrf.problem(token, "dana") is None
    clock.now += 1
    assert csrf.problem(token, "dana") == "the form's CSRF token has expired"


def test_each_process_has_its_own_secret() -> None:
    """Two instances without a given secret do not accept each other's tokens."""
    assert Csrf().problem(Csrf().issue("dana"), "dana") is not None
