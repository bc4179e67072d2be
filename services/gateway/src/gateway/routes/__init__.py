"""The public routes, one module per RealWorld area; each parses, calls one function, returns a model."""
