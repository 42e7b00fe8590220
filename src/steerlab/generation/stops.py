"""Stop strings, found in text as it is produced: linear in the text, whatever the stops' length.

A :class:`StopScanner` runs one Knuth–Morris–Pratt automaton per stop string over the characters
the model produces, so each new character costs amortised O(number of stops), never a search of
the whole text or of every prefix of a long stop. Its state also says how much of the text's end
could still become a stop string, which a streaming server must hold back.
"""

from __future__ import annotations

from collections.abc import Sequence


def _failure(s: str) -> list[int]:
    """KMP failure table: ``f[i]`` = length of the longest proper border of ``s[:i + 1]``."""
    f = [0] * len(s)
    k = 0
    for i in range(1, len(s)):
        while k and s[i] != s[k]:
            k = f[k - 1]
        if s[i] == s[k]:
            k += 1
        f[i] = k
    return f


class StopScanner:
    """Finds the first stop string in a growing text.

    :meth:`feed` takes the whole text produced so far (it may only grow; a text that rewrote its
    start is re-scanned from the beginning) and returns where the first completed stop string
    starts, or -1. :attr:`held` is the length of the text's longest end that is a proper prefix of
    some stop string: the part a stream may not send yet.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self._fail = [_failure(s) for s in self.stops]
        self._reset()

    def _reset(self) -> None:
        self._state = [0] * len(self.stops)  # characters of each stop matched at the text's end
        self._text = ""
        self._found = -1

    @property
    def held(self) -> int:
        return max(self._state, default=0)

    def feed(self, text: str) -> int:
        """Scan what ``text`` adds; the start of the first stop string found so far, else -1."""
        if self._found >= 0:
            return self._found
        if not text.startswith(self._text):
            self._reset()
        start = len(self._text)
        self._text = text
        for pos in range(start, len(text)):
            ch = text[pos]
            best = -1
            for j, stop in enumerate(self.stops):
                k, fail = self._state[j], self._fail[j]
                while k and stop[k] != ch:
                    k = fail[k - 1]
                if stop[k] == ch:
                    k += 1
                if k == len(stop):  # a whole stop string ends here; the longest one starts first
                    at = pos + 1 - k
                    best = at if best < 0 else min(best, at)
                    k = fail[k - 1]
                self._state[j] = k
            if best >= 0:
                self._found = best
                return best
        return -1


def cut_at_stop(text: str, stop: Sequence[str] | None) -> str:
    """``text`` up to (not including) the earliest of the ``stop`` strings it contains."""
    if not stop:
        return text
    ends = [text.find(s) for s in stop if s and s in text]
    return text[: min(ends)] if ends else text


class TextStream:
    """A completion's text as tokens arrive: what may be sent now and whether a stop string ended
    it. A partial character (U+FFFD at the end of the decoded text) and an end that could still
    become a stop string are held back until the next token settles them."""

    def __init__(self, stop: Sequence[str]) -> None:
        self._scanner = StopScanner(stop)
        self._stops = bool(stop)
        self.sent = ""  # the text sent so far

    def feed(self, text: str, *, final: bool) -> tuple[str, bool]:
        """``text``: the whole completion decoded so far; ``final``: it ends here (EOS, length).
        Returns (new text to send, whether a stop string ended the completion)."""
        settled = text.rstrip("\ufffd")
        cut = self._scanner.feed(settled) if self._stops else -1
        if cut >= 0:
            safe, stopped = settled[:cut], True
        elif final:
            safe, stopped = text, False
        else:
            safe, stopped = settled[:len(settled) - self._scanner.held], False
        delta = ""
        if len(safe) > len(self.sent) and safe.startswith(self.sent):
            delta = safe[len(self.sent):]
            self.sent = safe
        elif not safe.startswith(self.sent):  # a decode that rewrote earlier text: resend nothing twice
            self.sent = safe
        return delta, stopped
