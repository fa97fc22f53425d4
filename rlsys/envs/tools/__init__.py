"""Tools a tool-calling environment offers the model: a calculator and a sandboxed Python."""
