"""Execute a notebook cell by cell with nbclient through the named kernel, as Jupyter would, and print one JSON
line: each code cell's source, its text output, any error and the seconds it ran."""

import json
import sys
from datetime import datetime

import nbclient
import nbformat

notebook = nbformat.read(sys.argv[1], as_version=4)
client = nbclient.NotebookClient(notebook, kernel_name=sys.argv[2], timeout=180, allow_errors=True)
client.execute(cwd=sys.argv[3])
cells = []
for cell in notebook.cells:
    text = "".join(output.get("text", "") for output in cell.get("outputs", []) if output.get("output_type") == "stream")
    errors = [f"{output['ename']}: {output['evalue']}" for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]
    timing = cell.metadata.get("execution", {})
    seconds = (datetime.fromisoformat(timing["shell.execute_reply"]) - datetime.fromisoformat(
        timing["iopub.execute_input"])).total_seconds() if "shell.execute_reply" in timing else None
    cells.append({"source": cell.source, "text": text, "errors": errors, "seconds": seconds})
print(json.dumps({"cells": cells}))
