"""Consistent hashing as Envoy does it: ring hash and Maglev tables, request hashes.

`tables` builds the tables, `request` computes a request's hash from Envoy hash policies,
`functions` holds the hash functions, `modulo` the naive `hash mod n` balancer they are
compared with.
"""
