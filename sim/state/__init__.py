"""State: what a run is made of (parameters, scenario files, the people, their agents, random numbers, the event log). Imports nothing else from sim."""
