# C types for graywsgi/core/hashing.py when Cython compiles it (see graywsgi/speedups.py).

cimport cython

cdef unsigned int _OFFSET_BASIS
cdef unsigned int _PRIME
cdef unsigned int _MASK


@cython.locals(h=cython.uint, byte=cython.uchar)
cdef unsigned int _fnv1a_bytes(bytes data) noexcept

cpdef long bucket_of(key) except -1
