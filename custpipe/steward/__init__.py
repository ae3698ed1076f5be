"""The stewards' workbench: its decision store (`store`) and, later, its web application."""
