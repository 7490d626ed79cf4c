"""The embedded mode's stores: one SQLite file (`database`) and one module per port it keeps."""
