"""Typed records the store keeps as JSON, below every layer that reads them: a version's lineage and
its offline gate result. Each reads every shape earlier versions stored (`from_json`) and writes JSON
only at the store and the edges (`to_json`)."""
