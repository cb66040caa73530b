"""One router per resource: invoke, functions, system."""
