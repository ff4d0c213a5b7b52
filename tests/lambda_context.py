"""A LambdaContext as the runtime passes it (Powertools' own test habit)."""

from dataclasses import dataclass


@dataclass
class LambdaContext:
    function_name: str = "node-fleet-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:node-fleet-test"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    log_group_name: str = "/aws/lambda/node-fleet-test"
    log_stream_name: str = "2026/11/26/[$LATEST]abc"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000
