"""SARK's ComponentResources, one module each. Type tokens are ``sark:<module>:<Type>`` and never change."""
