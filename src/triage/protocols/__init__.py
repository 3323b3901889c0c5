"""Pure translation between ingress wire formats and the internal chat form (no I/O).

One module per format: `responses` (OpenAI Responses API: request items -> chat messages,
chat answers -> Response objects) with its stream state machine in `responses_stream`.
"""
