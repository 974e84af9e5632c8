"""`make bench`: figures from real processes on the embedded servers, beside in-run ceilings."""
