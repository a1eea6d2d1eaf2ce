"""`orchestrator serve`: the HTTP API and web page over the `predict` queue. A thin layer like the
CLI: it checks the request, calls the planning functions the commands call, and answers JSON.
Nothing here imports TensorFlow; an upload is checked by opening it with OpenCV."""
