"""moto's server, with one gap in its API Gateway filled as AWS behaves.

moto 5.2.5's PutRestApi passes an integration's `uri` and `httpMethod` to
`put_integration` only when the document has them, and that method requires
both: a mock integration (which has neither, as API Gateway itself exports
one) fails the whole put with a TypeError (HTTP 500). API Gateway takes it.
Both default to none here, as moto's own PutIntegration handler passes them.
Run as `python tests/moto_server.py [moto_server arguments]`.
"""

import sys

from moto.apigateway.models import APIGatewayBackend
from moto.server import main

_put_integration = APIGatewayBackend.put_integration


def put_integration(self, function_id, resource_id, method_type, integration_type,
                    uri=None, integration_method=None, *args, **kwargs):
    return _put_integration(self, function_id, resource_id, method_type,
                            integration_type, uri, integration_method, *args, **kwargs)


APIGatewayBackend.put_integration = put_integration

if __name__ == "__main__":
    sys.exit(main())
