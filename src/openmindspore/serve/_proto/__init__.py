"""Generated gRPC modules of the Open Inference Protocol (``grpc_predict_v2.proto``; ``generate.sh`` makes them)."""
