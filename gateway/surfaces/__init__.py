"""Client APIs, one folder each: parse a request into a canonical call, render answers, chunks
and errors in the API's own wire format, and name its paths."""
