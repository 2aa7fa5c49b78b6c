"""Translates template.yaml with SAM's own translator (as `sam deploy` would) and checks what
API Gateway and Lambda will really get: things `sam validate` and cfn-lint cannot see, such as
a misplaced authorizer setting that SAM silently ignores."""
import os
import sys
from pathlib import Path

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    """The template uses inline policies only; nothing to look up in IAM."""

    def load(self):
        return {}


EXAMPLE_ROUTES = ["GET /example/whoami"]


def main() -> int:
    # The translator fills pseudo parameters (AWS::Region) from the environment; any region will do.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    template = yaml_parse(Path(sys.argv[1] if len(sys.argv) > 1 else "template.yaml").read_text())
    # As after `sam package`: code lives in S3.
    template["Globals"]["Function"]["CodeUri"] = "s3://bucket/code.zip"
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function" and "CodeUri" in resource.get("Properties", {}):
            resource["Properties"]["CodeUri"] = "s3://bucket/code.zip"
    output = transform(template, {}, NoManagedPolicies())
    resources = output["Resources"]
    problems = []

    apis = [r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Api"]
    if len(apis) != 1:
        problems.append(f"expected one HTTP API, found {len(apis)}")
    authorizers = apis[0]["Properties"]["Body"]["components"]["securitySchemes"] if apis else {}
    for name, scheme in authorizers.items():
        settings = scheme.get("x-amazon-apigateway-authorizer", {})
        if settings.get("authorizerResultTtlInSeconds") != 0:
            problems.append(f"authorizer {name} caches results (authorizerResultTtlInSeconds="
                            f"{settings.get('authorizerResultTtlInSeconds')}); a revoke would not take effect at once")
        if settings.get("identitySource") not in ("$request.header.Authorization", ["$request.header.Authorization"]):
            problems.append(f"authorizer {name} identity source is {settings.get('identitySource')}")
        if not settings.get("enableSimpleResponses") or settings.get("authorizerPayloadFormatVersion") != "2.0":
            problems.append(f"authorizer {name} is not payload 2.0 with simple responses")

    permissions = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    invokes_authorizer = [p for p in permissions
                          if p["Properties"].get("FunctionName") == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}
                          and p["Properties"].get("Principal") == "apigateway.amazonaws.com"]
    if not invokes_authorizer:
        problems.append("API Gateway has no permission to invoke AuthorizerFunction")

    paths = apis[0]["Properties"]["Body"].get("paths", {}) if apis else {}
    routes = sorted(f"{m.upper()} {p}" for p, ops in paths.items() for m in ops if m != "parameters")
    # The bundle's own routes authenticate in process (one invocation per request); only the
    # example of a deployer's route is behind the authorizer.
    behind = []
    for route in routes:
        path, method = route.split(" ", 1)[1], route.split(" ", 1)[0].lower()
        if paths[path][method].get("security"):
            behind.append(route)
    if behind != EXAMPLE_ROUTES:
        problems.append(f"routes behind the authorizer are {behind}, expected only {EXAMPLE_ROUTES}")

    if problems:
        print("template check failed:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"template check: {len(routes) - len(behind)} routes authenticate in process, {behind} behind the "
          "authorizer, results not cached, invoke permission present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
