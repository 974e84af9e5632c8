"""Chaos: real worker processes, real PostgreSQL and Redis, and faults done to them for real
(SIGKILL, stop, FLUSHALL, restart). Nothing accepted may be lost.

These tests get servers of their own (package scope), so that stopping and restarting them never
disturbs the rest of the suite. Short leases and intervals keep each test to seconds. Every test
ends by checking the invariants over the whole database (``assert_invariants``), with the history
of every job's status and every document's indexed version recorded by test-only triggers.
"""
