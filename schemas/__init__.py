"""Wire schema: the .proto, its generated code, and the only modules that encode or decode.

``codec`` maps protobuf bytes to the core's value types and back; ``wire_json`` builds
the JSON shapes of the WebSocket and REST contract.
"""
