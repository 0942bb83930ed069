# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""A common recorded line read in C: what :func:`livecoupon.engine.recordings.plain_fields` answers, or None.

Most lines of a broadcast are the same few shapes: ``{"id":…,"type":"heartbeat","room":…,"ts":…,"user":…}``
and their likes, comments and gifts. msgspec reads them field by field into a typed shape, then
``plain_fields`` checks it in compiled Python; together ~0.8 µs a line, a third of a replay. :func:`plain`
reads such a line in one pass over its bytes and answers the fields ``plain_fields`` would, checks done, or
None for anything it does not take, and ``plain_fields`` then reads the line as it always did. So it takes
only what it can read exactly as they do:

- an object of the fields ``PlainLine`` names (``type``, ``room``, ``ts``, ``id``, ``user``, ``count``,
  ``text``, ``value``, ``device``, ``ip``, ``risk``, and ``profile`` as a flat object of texts and numbers)
  and of unknown fields holding a string, a number, ``true``, ``false`` or ``null``; a key twice, an escape
  in a string, any other nested value: None;
- strings as UTF-8 (Python's strict decoder: msgspec's rule), their lengths in characters as the checks count;
- numbers without a sign or an exponent, of at most 15 digits and three decimals (after their trailing zeros):
  so ``ts``'s milliseconds are exact, as :func:`livecoupon.domain.events.event_ms` reads them, a gift's fen too
  (``yuan_to_fen``), and a float is the double msgspec reads (:func:`_exact`);
- anything out of range (a negative count, an empty user, a name too long…) is None: the checked path says why.

The names of users and rooms, and texts, recur: each is looked up by its bytes in a small cache of the
strings made before (direct-mapped, so it never grows), so a repeat is the same string object, whose
hash is known, and the look-ups downstream compare pointers. tests/unit/test_scan.py holds it to
``plain_fields``'s own reading on random lines.
"""

from typing import get_args

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from cpython.float cimport PyFloat_FromDouble
from cpython.long cimport PyLong_FromLongLong
from cpython.unicode cimport PyUnicode_DecodeUTF8, PyUnicode_GET_LENGTH
from libc.stdint cimport uint64_t
from libc.string cimport memcmp, memcpy

from livecoupon.domain.events import (
    LAST_MS,
    MAX_IP,
    MAX_NAME,
    MAX_PROFILE_KEY,
    MAX_PROFILE_KEYS,
    MAX_PROFILE_VALUE,
    MAX_TEXT,
)
from livecoupon.domain.money import MAX_YUAN
from livecoupon.engine.lines import PlainLine, PlainType

cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void *PyUnicode_DATA(object text)
    const char *PyUnicode_AsUTF8AndSize(object text, Py_ssize_t *size) except NULL

# The fields, numbered in PlainLine's order
cdef enum:
    F_TYPE, F_ROOM, F_TS, F_ID, F_USER, F_COUNT, F_TEXT, F_VALUE, F_DEVICE, F_IP, F_RISK, F_PROFILE, F_UNKNOWN

cdef enum:
    KIND_NONE, KIND_QUIET, KIND_LIKE, KIND_COMMENT, KIND_GIFT, KIND_TRANSCRIPT, KIND_ONLINE

cdef long long _MAX_NAME = MAX_NAME
cdef long long _MAX_TEXT = MAX_TEXT
cdef long long _MAX_IP = MAX_IP
cdef long long _MAX_PROFILE_KEY = MAX_PROFILE_KEY
cdef long long _MAX_PROFILE_KEYS = MAX_PROFILE_KEYS
cdef long long _MAX_PROFILE_VALUE = MAX_PROFILE_VALUE
cdef long long _MAX_FEN = MAX_YUAN * 100
cdef long long _MAX_SECONDS = (LAST_MS + 1) // 1000  # 10000-01-01: a time past it is no date
cdef long long _POWERS[4]
_POWERS[:] = [1000, 100, 10, 1]

# The strings made before, by a hash of their bytes (_slot): one slot each
DEF CACHE_BITS = 13
DEF CACHE_SLOTS = 1 << CACHE_BITS
DEF CACHED_BYTES = 256  # a longer text is made anew each time: the cache holds 5 MiB at the very most
cdef list _cached_bytes = [None] * CACHE_SLOTS
cdef list _cached_strings = [None] * CACHE_SLOTS


# What a byte is inside a string: the string goes on (ASCII, or part of a wider character), it ends, or the
# reader leaves the line to Python (an escape, a control character)
cdef enum:
    PLAIN, WIDE, QUOTE, BAD
cdef unsigned char _CLASS[256]
cdef int _byte
for _byte in range(256):
    _CLASS[_byte] = BAD if _byte < 32 or _byte == 92 else QUOTE if _byte == 34 else WIDE if _byte >= 128 else PLAIN


cdef inline bint _space(unsigned char c) noexcept nogil:
    return c == 32 or c == 10 or c == 13 or c == 9


cdef inline bint _digit(unsigned char c) noexcept nogil:
    return 48 <= c <= 57


# The fields, as PlainLine names them (a field's index there is its F_ number), and the plain event types, as
# PlainType's Literal lists them (msgspec hands back these very strings), each with its kind
cdef tuple _FIELDS = PlainLine.__struct_fields__
assert len(_FIELDS) == F_UNKNOWN and _FIELDS[F_PROFILE] == "profile", "scan.pyx's F_ numbers are PlainLine's fields"
cdef tuple _TYPES = get_args(PlainType)
cdef dict _KINDS = {"like": KIND_LIKE, "comment": KIND_COMMENT, "gift": KIND_GIFT, "transcript": KIND_TRANSCRIPT,
                    "online_count": KIND_ONLINE}  # the others only say a viewer is there


# A name of at most 16 bytes is known by its length and two words: its first and its last eight bytes (they
# overlap below 16), or its bytes zero-padded below 8
cdef struct Name:
    Py_ssize_t length
    uint64_t head, tail


cdef inline Name _name(const unsigned char *k, Py_ssize_t n) noexcept nogil:
    cdef Name name
    name.length = n
    name.head = name.tail = 0
    if n >= 8:
        memcpy(&name.head, k, 8)
        memcpy(&name.tail, k + n - 8, 8)
    else:
        memcpy(&name.head, k, n)
    return name


# A table of names is looked up in one probe: each name has a slot of its own among 32, the top five bits of
# its three integers mixed and multiplied by the table's factor, the first of a sequence found (when the module
# loads) that gives every name of the table a different slot. A slot holds its name's index, -1 if none.
DEF NAME_SLOTS = 32


cdef struct Names:
    uint64_t factor
    Name names[NAME_SLOTS]
    int index[NAME_SLOTS]


cdef inline int _slot_of(Name name, uint64_t factor) noexcept nogil:
    cdef uint64_t mixed = name.head ^ (name.tail * 0x9E3779B97F4A7C15ULL) ^ <uint64_t>name.length
    return <int>(((mixed ^ (mixed >> 29)) * factor) >> 59)


cdef int _fill(Names *table, tuple texts) except -1:
    """Every name of ``texts`` in a slot of its own (a few tries for these tables: 19 and 2)."""
    cdef uint64_t factor, tries = 0
    cdef int j, slot, count = len(texts)
    cdef bint clash = True
    cdef Name names[NAME_SLOTS]
    cdef bytes spelt
    for j in range(count):
        spelt = texts[j].encode()
        names[j] = _name(spelt, len(spelt))
    while clash:
        tries += 1
        factor = (tries * 0x9E3779B97F4A7C15ULL) | 1
        clash = False
        for slot in range(NAME_SLOTS):
            table.index[slot] = -1
        for j in range(count):
            slot = _slot_of(names[j], factor)
            if table.index[slot] >= 0:
                clash = True
                break
            table.index[slot] = j
            table.names[slot] = names[j]
    table.factor = factor
    return 0


cdef Names _FIELD_KEYS
cdef Names _TYPE_KEYS
_fill(&_FIELD_KEYS, _FIELDS)
_fill(&_TYPE_KEYS, _TYPES)
cdef int _TYPE_KINDS[NAME_SLOTS]
for _j, _type in enumerate(_TYPES):
    _TYPE_KINDS[_j] = _KINDS.get(_type, KIND_QUIET)


cdef inline int _named(const Names *table, const unsigned char *k, Py_ssize_t n) noexcept nogil:
    """The index of the name of ``table`` that the n bytes at k spell; -1 for none."""
    cdef Name name
    cdef int slot
    if n > 16:
        return -1
    name = _name(k, n)
    slot = _slot_of(name, table.factor)
    if (table.index[slot] >= 0 and table.names[slot].length == n and table.names[slot].head == name.head
            and table.names[slot].tail == name.tail):
        return table.index[slot]
    return -1


cdef inline int _field(const unsigned char *k, Py_ssize_t n) noexcept nogil:
    cdef int j = _named(&_FIELD_KEYS, k, n)
    return F_UNKNOWN if j < 0 else j


cdef inline object _kind_name(const unsigned char *k, Py_ssize_t n, int *kind):
    """The event type's string and its kind; None if not a plain type."""
    cdef int j = _named(&_TYPE_KEYS, k, n)
    if j < 0:
        return None
    kind[0] = _TYPE_KINDS[j]
    return _TYPES[j]


cdef inline uint64_t _word(const unsigned char *p) noexcept nogil:
    cdef uint64_t word
    memcpy(&word, p, 8)
    return word


cdef inline Py_ssize_t _slot(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    """Where the cache keeps the string of these bytes: a hash of their length and of at most three words of
    them (the first, the middle and the last eight bytes; a shorter text whole). Two texts alike there share
    a slot, and take turns in it."""
    cdef uint64_t h = <uint64_t>n * 0x9E3779B97F4A7C15ULL, word = 0
    cdef Py_ssize_t i
    if n >= 8:
        h ^= _word(p) * 0xC2B2AE3D27D4EB4FULL
        h ^= (_word(p + n - 8) + 0x165667B19E3779F9ULL) * 0x9E3779B97F4A7C15ULL
        if n > 16:
            h ^= (_word(p + n // 2 - 4) ^ 0x27D4EB2F165667C5ULL) * 0xC2B2AE3D27D4EB4FULL
    else:
        for i in range(n):
            word = (word << 8) | p[i]
        h ^= word * 0xC2B2AE3D27D4EB4FULL
    return <Py_ssize_t>((h ^ (h >> 32)) * 0x9E3779B97F4A7C15ULL >> (64 - CACHE_BITS))


cdef object _string(const unsigned char *p, Py_ssize_t n, bint ascii, bint cached):
    """The string of n bytes at p (None: not UTF-8); ``cached``: the one made before for the same bytes."""
    cdef Py_ssize_t slot = 0
    cdef object key
    cached = cached and n <= CACHED_BYTES
    if cached:
        slot = _slot(p, n)
        key = _cached_bytes[slot]
        if key is not None and PyBytes_GET_SIZE(key) == n and memcmp(PyBytes_AS_STRING(key), p, n) == 0:
            return _cached_strings[slot]
    if ascii:  # known to be ASCII: copied, not checked again
        text = PyUnicode_New(n, 127)
        memcpy(PyUnicode_DATA(text), p, n)
    else:
        try:
            text = PyUnicode_DecodeUTF8(<const char *>p, n, NULL)
        except UnicodeDecodeError:
            return None
    if cached:
        _cached_bytes[slot] = PyBytes_FromStringAndSize(<const char *>p, n)
        _cached_strings[slot] = text
    return text


cdef inline bint _number(const unsigned char *s, Py_ssize_t n, Py_ssize_t *at, long long *whole, long long *frac,
                  int *decimals, bint *point) noexcept:
    """A JSON number at s[at]: its digits before and after the point (at most 15 in all, at most 3 after it
    but for trailing zeros, which are dropped) and whether it has a point (msgspec reads it as a float then).
    No sign, no exponent: False for any other number, or none."""
    cdef Py_ssize_t i = at[0], start
    cdef long long w = 0, f = 0
    cdef int d = 0, digits = 0
    point[0] = False
    if i >= n or not _digit(s[i]):
        return False
    if s[i] == b"0" and i + 1 < n and _digit(s[i + 1]):
        return False  # a leading zero: not JSON
    while i < n and _digit(s[i]):
        w = w * 10 + (s[i] - 48)
        digits += 1
        i += 1
        if digits > 15:
            return False
    if i < n and s[i] == b".":
        point[0] = True
        i += 1
        start = i
        while i < n and _digit(s[i]):
            if i - start >= 3:
                if s[i] != b"0":
                    return False
            else:
                f = f * 10 + (s[i] - 48)
                d += 1
            i += 1
        if i == start or digits + d > 15:
            return False
    if i < n and (s[i] == b"e" or s[i] == b"E"):
        return False
    while d > 0 and f % 10 == 0:  # 1.50 is 1.5
        f //= 10
        d -= 1
    at[0] = i
    whole[0] = w
    frac[0] = f
    decimals[0] = d
    return True


cdef inline double _exact(long long whole, long long frac, int decimals) noexcept:
    """The double nearest the decimal ``whole.frac`` (at most 15 digits, so both parts are exact doubles and
    one division rounds once: the double msgspec's reading gives)."""
    return <double>(whole * _POWERS[3 - decimals] + frac) / <double>_POWERS[3 - decimals]


cdef object _profile(const unsigned char *s, Py_ssize_t n, Py_ssize_t *at):
    """A profile at s[at] (``{``): a flat object of texts and numbers as ``plain_profile`` takes it, or None."""
    cdef Py_ssize_t i = at[0] + 1, pairs = 0
    cdef long long whole, frac
    cdef int decimals
    cdef bint point, last
    cdef dict profile = {}
    i = _skip(s, n, i)
    if i < n and s[i] == b"}":
        at[0] = i + 1
        return profile
    while True:
        i = _skip(s, n, i)
        key = _quoted(s, n, &i)
        if key is None or PyUnicode_GET_LENGTH(key) > _MAX_PROFILE_KEY:
            return None
        i = _value_at(s, n, i)
        if i < 0:
            return None
        if s[i] == b'"':
            value = _quoted(s, n, &i)
            if value is None or PyUnicode_GET_LENGTH(value) > _MAX_PROFILE_VALUE:
                return None
        elif _digit(s[i]):
            if not _number(s, n, &i, &whole, &frac, &decimals, &point):
                return None
            value = PyFloat_FromDouble(_exact(whole, frac, decimals)) if point else PyLong_FromLongLong(whole)
        else:
            return None
        profile[key] = value
        pairs += 1
        i = _next_member(s, n, i, &last)
        if i < 0:
            return None
        if last:
            break
    if pairs != len(profile) or pairs > _MAX_PROFILE_KEYS:
        return None  # a key twice, or too many
    at[0] = i
    return profile


cdef inline Py_ssize_t _closing(const unsigned char *s, Py_ssize_t n, Py_ssize_t i, bint *ascii) noexcept nogil:
    """Where the string that starts at s[i] (past its opening quote) ends: its closing quote, by each byte's
    class; -1 at an escape, a control character or the line's end. ``ascii``: no byte of it past 127."""
    cdef unsigned char c
    ascii[0] = True
    while True:
        while i < n and _CLASS[s[i]] == PLAIN:  # most bytes: a tight loop
            i += 1
        c = _CLASS[s[i]] if i < n else BAD
        if c == QUOTE:
            return i
        if c != WIDE:
            return -1
        ascii[0] = False
        i += 1


cdef inline Py_ssize_t _skip(const unsigned char *s, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    """Past the whitespace at s[i]."""
    while i < n and _space(s[i]):
        i += 1
    return i


cdef inline Py_ssize_t _value_at(const unsigned char *s, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    """From a key's closing quote's end past its colon to its value; -1 without a colon, or a value after it."""
    i = _skip(s, n, i)
    if i >= n or s[i] != b":":
        return -1
    i = _skip(s, n, i + 1)
    return i if i < n else -1


cdef inline Py_ssize_t _next_member(const unsigned char *s, Py_ssize_t n, Py_ssize_t i, bint *last) noexcept nogil:
    """From a value's end past the comma before the next member, or past the object's closing brace (``last``);
    -1 for anything else."""
    i = _skip(s, n, i)
    if i >= n:
        return -1
    last[0] = s[i] == b"}"
    return i + 1 if last[0] or s[i] == b"," else -1


cdef object _quoted(const unsigned char *s, Py_ssize_t n, Py_ssize_t *at):
    """The string whose opening quote is at s[at] (cached), its end past the closing one; None if unusual."""
    cdef Py_ssize_t end
    cdef bint ascii
    if at[0] >= n or s[at[0]] != b'"':
        return None
    end = _closing(s, n, at[0] + 1, &ascii)
    if end < 0:
        return None
    text = _string(s + at[0] + 1, end - at[0] - 1, ascii, True)
    at[0] = end + 1
    return text


def plain(line):
    """``plain_fields(line)`` for a line (bytes, or text) it reads exactly so; None for any other (never
    ``NOT_PLAIN``)."""
    cdef const unsigned char *s
    cdef Py_ssize_t n
    if type(line) is bytes:
        s = <const unsigned char *>PyBytes_AS_STRING(line)
        n = PyBytes_GET_SIZE(line)
    elif type(line) is str:  # its UTF-8, which an ASCII text is already (others keep it once made)
        try:
            s = <const unsigned char *>PyUnicode_AsUTF8AndSize(line, &n)
        except UnicodeEncodeError:
            return None  # a lone surrogate: msgspec says so
    else:
        return None
    cdef Py_ssize_t i = 0, start
    cdef int field, kind = KIND_NONE, decimals, ts_decimals = 0, value_decimals = 0
    cdef unsigned int seen = 0, given = 0  # the fields named; those of them not null
    cdef bint ascii, point, has_count, last
    cdef long long fen
    cdef unsigned char c
    cdef long long whole, frac, ts_whole = 0, ts_frac = 0, value_whole = 0, value_frac = 0, count = 0
    cdef object kind_name = None, room = None, event_id = None, user = None, text = None, value, facts = None
    cdef object device = None, ip = None, profile = None
    cdef double risk = 0
    i = _skip(s, n, i)
    if i >= n or s[i] != b"{":
        return None
    i += 1
    while True:
        i = _skip(s, n, i)
        if i >= n or s[i] != b'"':
            return None  # an empty object, or anything unusual
        start = i + 1
        i = _closing(s, n, start, &ascii)
        if i < 0 or not ascii:
            return None  # an escape in a key, or a key past ASCII: msgspec says what it is
        field = _field(s + start, i - start)
        if field != F_UNKNOWN:
            if seen & (1u << field):
                return None  # a key twice
            seen |= 1u << field
            given |= 1u << field
        i = _value_at(s, n, i + 1)
        if i < 0:
            return None
        c = s[i]
        if c == b'"':
            start = i + 1
            i = _closing(s, n, start, &ascii)
            if i < 0:
                return None
            if field == F_TYPE:
                kind_name = _kind_name(s + start, i - start, &kind)
                if kind_name is None:
                    return None
            elif field == F_ROOM or field == F_USER or field == F_TEXT or field == F_ID or field == F_DEVICE \
                    or field == F_IP:
                found = _string(s + start, i - start, ascii, field != F_ID)  # an id is never seen twice
                if found is None:
                    return None
                if field == F_ROOM:
                    room = found
                elif field == F_USER:
                    user = found
                elif field == F_TEXT:
                    text = found
                elif field == F_ID:
                    event_id = found
                elif field == F_DEVICE:
                    device = found
                else:
                    ip = found
            elif field != F_UNKNOWN:
                return None  # a string where a number goes
            i += 1
        elif _digit(c):
            if not _number(s, n, &i, &whole, &frac, &decimals, &point):
                return None
            if field == F_TS:
                ts_whole, ts_frac, ts_decimals = whole, frac, decimals
            elif field == F_VALUE:
                value_whole, value_frac, value_decimals = whole, frac, decimals
            elif field == F_COUNT:
                if point:
                    return None  # msgspec reads 1.0 as a float, which a count is not
                count = whole
            elif field == F_RISK:
                if whole > 1 or (whole == 1 and frac != 0):
                    return None
                risk = _exact(whole, frac, decimals)
            elif field != F_UNKNOWN:
                return None
        elif c == b"{" and field == F_PROFILE:
            profile = _profile(s, n, &i)
            if profile is None:
                return None
        elif c == b"n" and i + 4 <= n and memcmp(s + i, b"null", 4) == 0:
            if field == F_TYPE or field == F_ROOM or field == F_TS:
                return None
            if field != F_UNKNOWN:
                given &= ~(1u << field)
            i += 4
        elif field == F_UNKNOWN and c == b"t" and i + 4 <= n and memcmp(s + i, b"true", 4) == 0:
            i += 4
        elif field == F_UNKNOWN and c == b"f" and i + 5 <= n and memcmp(s + i, b"false", 5) == 0:
            i += 5
        else:
            return None  # a negative number, an object, an array…: plain_fields
        i = _next_member(s, n, i, &last)
        if i < 0:
            return None
        if last:
            break
    i = _skip(s, n, i)
    if i != n or kind_name is None or room is None or not given & (1u << F_TS):
        return None
    if PyUnicode_GET_LENGTH(room) == 0 or PyUnicode_GET_LENGTH(room) > _MAX_NAME:
        return None
    if event_id is not None and PyUnicode_GET_LENGTH(event_id) > _MAX_NAME:
        return None
    if ts_whole >= _MAX_SECONDS:
        return None
    ms = PyLong_FromLongLong(ts_whole * 1000 + ts_frac * _POWERS[ts_decimals])
    has_count = given & (1u << F_COUNT)
    if kind == KIND_TRANSCRIPT or kind == KIND_ONLINE:
        if kind == KIND_ONLINE:
            if not has_count:
                return None
        elif text is None or PyUnicode_GET_LENGTH(text) > _MAX_TEXT:
            return None
        return kind_name, room, ms, event_id, None, PyLong_FromLongLong(count) if has_count else None, text, 0, None
    if user is None or PyUnicode_GET_LENGTH(user) == 0 or PyUnicode_GET_LENGTH(user) > _MAX_NAME:
        return None
    if ((given & (1u << F_DEVICE) and PyUnicode_GET_LENGTH(device))
            or (given & (1u << F_IP) and PyUnicode_GET_LENGTH(ip)) or given & (1u << F_RISK | 1u << F_PROFILE)):
        if not given & (1u << F_DEVICE) or not PyUnicode_GET_LENGTH(device):
            device = None  # "": one the platform does not know, as plain_fields reads it
        elif PyUnicode_GET_LENGTH(device) > _MAX_NAME:
            return None
        if not given & (1u << F_IP) or not PyUnicode_GET_LENGTH(ip):
            ip = None
        elif PyUnicode_GET_LENGTH(ip) > _MAX_IP:
            return None
        if not given & (1u << F_PROFILE):
            profile = None
        facts = (device, ip, PyFloat_FromDouble(risk) if given & (1u << F_RISK) else None, profile)
    value = 0
    if kind == KIND_LIKE:
        if not has_count:
            count, has_count = 1, True
    elif kind == KIND_COMMENT:
        if text is None or PyUnicode_GET_LENGTH(text) > _MAX_TEXT:
            return None
    elif kind == KIND_GIFT:
        if not given & (1u << F_VALUE) or value_decimals > 2:
            return None
        fen = value_whole * 100 + value_frac * (10 if value_decimals == 1 else 1)
        if fen > _MAX_FEN:
            return None
        value = PyLong_FromLongLong(fen)
    return kind_name, room, ms, event_id, user, PyLong_FromLongLong(count) if has_count else None, text, value, facts
