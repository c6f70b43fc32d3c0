"""The imperative shell: reads inputs, runs the coverage stages, writes outputs."""
