"""The distributed mode's stores on PostgreSQL: the database and its migrations (`database`),
statement traces, and one module per port it keeps."""
