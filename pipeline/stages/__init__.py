"""Pipeline stages: each a pure core plus one thin PTransform."""
