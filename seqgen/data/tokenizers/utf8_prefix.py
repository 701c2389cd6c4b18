"""Which byte tokens may come next so that the bytes generated stay well-formed UTF-8.

A byte or BPE model can draw a continuation byte where a character must start, or a lead byte
followed by something other than its continuation bytes; decoded, either becomes U+FFFD. The
bytes of a stream so far put it in one of a few states (at a character boundary, or inside a
character with so many bytes to come, some with a narrower range), and a token is allowed in a
state when each of its bytes is one the state accepts, in turn. The states and their ranges are
those of RFC 3629's well-formed sequences: no overlong forms (C0, C1, E0 80-9F, F0 80-8F), no
surrogates (ED A0-BF), nothing above U+10FFFF (F4 90-BF, F5-FF).
"""

from __future__ import annotations

import numpy as np

BOUNDARY = 0
REJECT = -1
# State -> (first byte, last byte, next state) for every byte range the state accepts.
ACCEPTS: dict[int, list[tuple[int, int, int]]] = {
    BOUNDARY: [
        (0x00, 0x7F, BOUNDARY),
        (0xC2, 0xDF, 1),
        (0xE0, 0xE0, 4),
        (0xE1, 0xEC, 2),
        (0xED, 0xED, 5),
        (0xEE, 0xEF, 2),
        (0xF0, 0xF0, 6),
        (0xF1, 0xF3, 3),
        (0xF4, 0xF4, 7),
    ],
    1: [(0x80, 0xBF, BOUNDARY)],  # one continuation byte to come
    2: [(0x80, 0xBF, 1)],  # two
    3: [(0x80, 0xBF, 2)],  # three
    4: [(0xA0, 0xBF, 1)],  # after E0: not an overlong form
    5: [(0x80, 0x9F, 1)],  # after ED: not a surrogate
    6: [(0x90, 0xBF, 2)],  # after F0: not an overlong form
    7: [(0x80, 0x8F, 2)],  # after F4: not above U+10FFFF
}
STATES = len(ACCEPTS)


def _transitions() -> np.ndarray:
    table = np.full((STATES, 256), REJECT, dtype=np.int8)
    for state, ranges in ACCEPTS.items():
        for first, last, after in ranges:
            table[state, first : last + 1] = after
    return table


NEXT = _transitions()


def state_after(data: bytes, state: int = BOUNDARY) -> int:
    """The state after `data` from `state`: REJECT once a byte is not one the state accepts."""
    for byte in data:
        state = int(NEXT[state, byte])
        if state == REJECT:
            return REJECT
    return state


def allowed_tokens(pieces: list[bytes]) -> np.ndarray:
    """(STATES, tokens): whether each token's bytes may follow a stream in each state."""
    return np.array([[state_after(piece, state) != REJECT for piece in pieces] for state in range(STATES)])


def pending_states(pending: list[bytes]) -> np.ndarray:
    """Each stream's state from the bytes of its character still incomplete. A decoder holds only
    bytes that can still make a character (it turns the others into U+FFFD at once), so REJECT
    cannot come from it; a hand-made pending list that rejects is taken to be at a boundary."""
    states = [state_after(held) for held in pending]
    return np.array([BOUNDARY if s == REJECT else s for s in states], dtype=np.int64)
