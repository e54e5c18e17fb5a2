# C-level helpers for graywsgi's compiled modules (see graywsgi/speedups.py).
#
# Only compiled code reaches these: each call site is an `if cython.compiled:`
# branch whose `else` does the same thing in plain Python (the comment at
# each helper names it). tests/test_speedups.py checks that both give the
# same results.

from cpython.contextvars cimport PyContextVar_Reset, PyContextVar_Set, get_value_no_default
from cpython.object cimport PyTypeObject
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE, PyTuple_SET_ITEM


cdef extern from "Python.h":
    # A new reference (None of the items set yet), or NULL with an exception.
    object PyType_GenericAlloc(PyTypeObject* type, Py_ssize_t nitems)


cdef inline object record_from(type record_type, list items):
    # tuple.__new__(record_type, items), for a NamedTuple class.
    cdef Py_ssize_t count = len(items)
    cdef Py_ssize_t index
    cdef object record = PyType_GenericAlloc(<PyTypeObject*>record_type, count)
    cdef object item
    for index in range(count):
        item = items[index]
        Py_INCREF(item)
        PyTuple_SET_ITEM(record, index, item)
    return record


cdef inline object record_with(type record_type, object record, Py_ssize_t first, a, b, c, d):
    # `record` is a tuple or a tuple subclass (a NamedTuple): not typed `tuple`,
    # which Cython would hold to exactly tuple.
    # tuple.__new__(record_type, (*record[:first], a, b, c, d, *record[first + 4:]))
    cdef Py_ssize_t count = PyTuple_GET_SIZE(record)
    cdef Py_ssize_t index
    cdef object changed = PyType_GenericAlloc(<PyTypeObject*>record_type, count)
    cdef object item
    for index in range(count):
        if first <= index < first + 4:
            continue  # set below
        item = <object>PyTuple_GET_ITEM(record, index)
        Py_INCREF(item)
        PyTuple_SET_ITEM(changed, index, item)
    Py_INCREF(a)
    PyTuple_SET_ITEM(changed, first, a)
    Py_INCREF(b)
    PyTuple_SET_ITEM(changed, first + 1, b)
    Py_INCREF(c)
    PyTuple_SET_ITEM(changed, first + 2, c)
    Py_INCREF(d)
    PyTuple_SET_ITEM(changed, first + 3, d)
    return changed


cdef inline object context_set(variable, value):
    # variable.set(value)
    return PyContextVar_Set(variable, value)


cdef inline int context_reset(variable, token) except -1:
    # variable.reset(token)
    return PyContextVar_Reset(variable, token)


cdef inline object context_get(variable):
    # variable.get(None)
    return get_value_no_default(variable, None)


cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object text)
    const char* PyUnicode_DATA "(const char*)PyUnicode_DATA" (object text)


cdef extern from "Python.h":
    Py_UCS4 PyUnicode_READ_CHAR(object text, Py_ssize_t index)


cdef inline bint needs_trim(str text) noexcept:
    # text.strip(" \t") != text: a space or a tab at either end
    cdef Py_ssize_t length = len(text)
    cdef Py_UCS4 first, last
    if length == 0:
        return False
    first = PyUnicode_READ_CHAR(text, 0)
    last = PyUnicode_READ_CHAR(text, length - 1)
    return first == 0x20 or first == 0x09 or last == 0x20 or last == 0x09


cdef inline object status_code_of(str status):
    # The code of a status line: int(status[:3]) when its first three
    # characters are ASCII digits, else None.
    cdef unsigned int hundreds, tens, ones
    if len(status) < 3:
        return None
    hundreds = <unsigned int>PyUnicode_READ_CHAR(status, 0) - 0x30
    tens = <unsigned int>PyUnicode_READ_CHAR(status, 1) - 0x30
    ones = <unsigned int>PyUnicode_READ_CHAR(status, 2) - 0x30
    if hundreds > 9 or tens > 9 or ones > 9:  # unsigned: a character below "0" wraps round
        return None
    return <long>(hundreds * 100 + tens * 10 + ones)


cdef inline object lowered(object text):
    # text.lower() for a str, without a new string when it is ASCII with no capital
    cdef const char* data
    cdef Py_ssize_t index
    if type(text) is str and PyUnicode_IS_ASCII(text):
        data = PyUnicode_DATA(text)
        for index in range(len(<str>text)):
            if b"A" <= data[index] <= b"Z":
                return text.lower()
        return text
    return text.lower()


cdef inline bint is_ascii(str text) noexcept:
    # text.isascii()
    return PyUnicode_IS_ASCII(text)


from libc.stdint cimport uint64_t
from libc.string cimport memcmp, memcpy

# Eight characters at a time: for a word w of ASCII bytes (each < 0x80),
# (w - ONES * n) & ~w & HIGHS is nonzero exactly when a byte of w is below n
# ("hasless", Sean Anderson's Bit Twiddling Hacks; ONES has 0x01 in every
# byte, HIGHS 0x80). Equality to 0x7f is a zero byte of w ^ (ONES * 0x7f),
# found the same way with n = 1.


cdef inline bint ascii_printable(str text) noexcept:
    # text.isascii() and text.isprintable(): every character SP .. "~"
    cdef const char* data
    cdef Py_ssize_t index = 0, length
    cdef uint64_t word, flipped
    if not PyUnicode_IS_ASCII(text):
        return False
    data = PyUnicode_DATA(text)
    length = len(text)
    while index + 8 <= length:
        memcpy(&word, data + index, 8)
        flipped = word ^ 0x7F7F7F7F7F7F7F7FULL
        if (((word - 0x2020202020202020ULL) & ~word) | ((flipped - 0x0101010101010101ULL) & ~flipped)) \
                & 0x8080808080808080ULL:
            return False
        index += 8
    while index < length:
        if data[index] < 0x20 or data[index] > 0x7e:
            return False
        index += 1
    return True


cdef inline bint _lower_hex(const char* data, Py_ssize_t start, Py_ssize_t end) noexcept:
    # every character of data[start:end] is 0-9 or a-f
    cdef Py_ssize_t index
    cdef unsigned char char
    for index in range(start, end):
        char = <unsigned char>data[index]
        if <unsigned char>(char - 0x30) > 9 and <unsigned char>(char - 0x61) > 5:
            return False
    return True


cdef inline bint ascii_traceparent(str value) noexcept:
    # _TRACEPARENT.fullmatch(value) is not None, for
    # (?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}
    cdef const char* data
    if len(value) != 55 or not PyUnicode_IS_ASCII(value):
        return False
    data = PyUnicode_DATA(value)
    if data[2] != b"-" or data[35] != b"-" or data[52] != b"-" or (data[0] == b"f" and data[1] == b"f"):
        return False
    return (
        _lower_hex(data, 0, 2) and _lower_hex(data, 3, 35) and _lower_hex(data, 36, 52) and _lower_hex(data, 53, 55)
        and memcmp(data + 3, b"00000000000000000000000000000000", 32) != 0
        and memcmp(data + 36, b"0000000000000000", 16) != 0
    )


cdef inline object item(object record, Py_ssize_t index):
    # record[index], for a tuple or NamedTuple and an index inside it (a
    # NamedTuple's own indexing goes through a slot wrapper).
    return <object>PyTuple_GET_ITEM(record, index)


cdef extern from "Python.h":
    object PyMethod_New(object function, object owner)  # Cython's cpython.method has Python 2's three arguments


cdef inline object bound_method(object function, object owner):
    # function.__get__(owner) for a function of owner's class: the bound
    # method `owner.name` gives, without looking the name up along the MRO.
    return PyMethod_New(function, owner)


from cpython.list cimport PyList_GET_ITEM, PyList_SET_ITEM
from cpython.ref cimport Py_DECREF


cdef inline void put(list items, Py_ssize_t index, object value) noexcept:
    # items[index] = value, for an index inside the list (no bounds check;
    # the old item is released after the new one is in place, as list does).
    cdef object old = <object>PyList_GET_ITEM(items, index)
    Py_INCREF(value)
    PyList_SET_ITEM(items, index, value)
    Py_DECREF(old)


from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec


cdef inline double monotonic_now() noexcept:
    # time.monotonic(), read as CPython reads it (same clock, same rounding).
    cdef timespec now
    cdef long long nanoseconds
    clock_gettime(CLOCK_MONOTONIC, &now)
    nanoseconds = now.tv_sec * 1000000000LL + now.tv_nsec
    if nanoseconds % 1000000000LL == 0:
        return <double>(nanoseconds // 1000000000LL)
    return <double>nanoseconds / 1e9


from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free
from libc.string cimport memcpy, strlen


cdef extern from "Python.h":
    char* PyOS_double_to_string(double value, char format_code, int precision, int flags, int* kind) except NULL


cdef inline Py_ssize_t thousandths_text(double milliseconds, char* out) noexcept:
    # b"%.3f" % milliseconds into `out` (32 bytes), without a call to the
    # float formatter, where integers give the same text: above 0, below 1e9 ms,
    # and not within 0.001 of a tie between two thousandths. There the
    # product below is off the exact one by at most 2**-14 (it is below
    # 1e12), so it rounds to the same thousandth. Returns the length, or 0
    # when the caller must format the number itself.
    cdef double scaled = milliseconds * 1000.0
    cdef long long thousandths
    cdef double rest
    cdef char reverse[32]
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t index
    if not (0.0 < milliseconds < 1e9):  # also NaN, and -0.0 (which "%.3f" signs)
        return 0
    thousandths = <long long>scaled
    rest = scaled - <double>thousandths
    if 0.499 <= rest <= 0.501:
        return 0
    if rest > 0.5:
        thousandths += 1
    for index in range(3):  # the decimals, last first
        reverse[count] = <char>(48 + thousandths % 10)
        thousandths //= 10
        count += 1
    reverse[count] = b"."
    count += 1
    while True:  # the whole milliseconds, at least one digit
        reverse[count] = <char>(48 + thousandths % 10)
        thousandths //= 10
        count += 1
        if thousandths == 0:
            break
    for index in range(count):
        out[index] = reverse[count - 1 - index]
    return count


cdef inline bytes timed_line(bytes head, double milliseconds, bytes tail):
    # head + b"%.3f" % milliseconds + tail, in one allocation
    cdef char text[32]
    cdef char* number = text
    cdef char* formatted = NULL
    cdef Py_ssize_t digits = thousandths_text(milliseconds, text)
    cdef Py_ssize_t head_size = PyBytes_GET_SIZE(head)
    cdef Py_ssize_t tail_size = PyBytes_GET_SIZE(tail)
    cdef bytes line
    cdef char* out
    if digits == 0:
        formatted = PyOS_double_to_string(milliseconds, b"f", 3, 0, NULL)
        number = formatted
        digits = strlen(formatted)
    try:
        line = PyBytes_FromStringAndSize(NULL, head_size + digits + tail_size)
        out = PyBytes_AS_STRING(line)
        memcpy(out, PyBytes_AS_STRING(head), head_size)
        memcpy(out + head_size, number, digits)
        memcpy(out + head_size + digits, PyBytes_AS_STRING(tail), tail_size)
    finally:
        if formatted != NULL:
            PyMem_Free(formatted)
    return line


from libc.errno cimport EINTR, errno


cdef extern from "sys/socket.h" nogil:
    ssize_t send(int socket, const void* buffer, size_t length, int flags)
    enum: MSG_DONTWAIT
    enum: MSG_NOSIGNAL


cdef extern from "Python.h":
    object PyErr_SetFromErrno(object type)


cdef inline int send_datagram(int descriptor, bytes payload) except -1:
    # socket.send(payload) on the connected, non-blocking socket `descriptor`:
    # retried on EINTR (PEP 475), any other error raised as OSError does
    # (EAGAIN: BlockingIOError).
    cdef ssize_t sent
    while True:
        sent = send(descriptor, PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload), MSG_DONTWAIT | MSG_NOSIGNAL)
        if sent >= 0:
            return 0
        if errno != EINTR:
            PyErr_SetFromErrno(OSError)
            return -1
