"""Read queries compiled to one SQL statement that builds the response JSON."""
