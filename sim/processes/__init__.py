"""Processes: one module per monthly process acting on the people (justice, intervention, needs, offending, courts,
exits, family). A new process goes here and is called from sim.model; imports only from sim.state and other processes.

Each process is plain numpy over the rows it concerns; where a month would otherwise take many small numpy calls,
the per-person arithmetic is a compiled pass (numba ``@njit``, named ``_something``, a plain loop over the rows) that
a short Python function feeds with the arrays and keyed draws it needs (``CounterRNG.key`` + ``uniform_at``, the
same streams as ``CounterRNG.uniform``). Pass arrays to a compiled pass one by one, or unpack a tuple once at its
top: unpacking a tuple of arrays, or slicing an array, for every row costs more than the row's work.
"""
