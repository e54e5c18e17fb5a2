"""HTTP helpers: header field syntax, the trust boundary for gray headers,
the upstream proxy, propagation of the gray context into outgoing calls,
query strings as bytes and request ids.
"""
