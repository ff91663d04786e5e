//! The HEFT-class list scheduler: maps the tasks of a DAG onto (node, device) pairs.
