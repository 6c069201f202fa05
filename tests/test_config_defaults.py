"""The built-in configuration: one integration per service whose environment variable is set."""

from __future__ import annotations

import pytest

from agent.config import AwsSigV4Auth, AzureAdAuth, HeaderAuth, default_config
from agent.errors import ConfigError


def test_nothing_set_means_no_integrations() -> None:
    config, enabled = default_config({})
    assert enabled == []
    assert config.integrations == {}
    assert config.listen.grpc == "127.0.0.1:50051"


def test_key_only_services() -> None:
    env = {
        "OPENAI_API_KEY": "sk-1",
        "ANTHROPIC_API_KEY": "sk-ant-2",
        "SLACK_BOT_TOKEN": "xoxb-3",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/4",
        "DISCORD_BOT_TOKEN": "d-5",
        "DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/1/6",
        "TEAMS_WEBHOOK_URL": "https://prod-00.westus.logic.azure.com/workflows/7?sig=x",
        "GITHUB_TOKEN": "ghp_8",
        "GITLAB_TOKEN": "glpat-9",
        "VERCEL_TOKEN": "v-10",
        "DOCKERHUB_TOKEN": "dh-11",
        "UNRELATED": "x",
    }
    config, enabled = default_config(env)
    assert enabled == sorted(
        [
            "openai",
            "anthropic",
            "slack",
            "slack_webhook",
            "discord",
            "discord_webhook",
            "teams_webhook",
            "github",
            "gitlab",
            "vercel",
            "dockerhub",
        ]
    )
    assert list(config.integrations) == enabled
    # Secrets are resolved through ${env:...}, so they remember their variable.
    token = config.integrations["openai"].auth.token  # type: ignore[union-attr]
    assert (token.get(), token.source) == ("sk-1", "env:OPENAI_API_KEY")


def test_empty_variables_do_not_count() -> None:
    assert default_config({"OPENAI_API_KEY": "", "GITHUB_TOKEN": "  "})[1] == []


def test_services_that_need_more_than_a_key() -> None:
    env = {
        "AZURE_OPENAI_API_KEY": "az-key",
        "AZURE_OPENAI_ENDPOINT": "https://my-res.openai.azure.com/",
        "GOOGLE_API_KEY": "g-key",
        "KUBERNETES_SERVICE_HOST": "fd00::1",
        "KUBERNETES_SERVICE_PORT": "6443",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "AWS_SESSION_TOKEN": "aws-session",
        "KILO_AWS_SERVICE": "s3",
        "AZURE_TENANT_ID": "tenant",
        "AZURE_CLIENT_ID": "client",
        "AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/azure/tokens/azure-identity-token",
        "GOOGLE_APPLICATION_CREDENTIALS": "/var/run/gcp/key.json",
    }
    config, enabled = default_config(env)
    assert enabled == ["aws", "azure", "azure_openai", "gemini", "google_cloud", "kubernetes"]
    integrations = config.integrations
    assert integrations["azure_openai"].base_url == "https://my-res.openai.azure.com/openai"
    gemini = integrations["gemini"].auth
    assert isinstance(gemini, HeaderAuth)
    assert gemini.value.source == "env:GOOGLE_API_KEY"
    assert integrations["kubernetes"].base_url == "https://[fd00::1]:6443"
    assert integrations["kubernetes"].transport.ca_file is not None
    aws = integrations["aws"]
    assert aws.base_url == "https://s3.eu-west-1.amazonaws.com"
    assert isinstance(aws.auth, AwsSigV4Auth)
    assert aws.auth.session_token is not None
    assert aws.auth.session_token.get() == "aws-session"
    azure = integrations["azure"].auth
    assert isinstance(azure, AzureAdAuth)
    assert azure.federated_token_file == env["AZURE_FEDERATED_TOKEN_FILE"]
    assert azure.client_secret is None
    assert integrations["google_cloud"].base_url == "https://storage.googleapis.com/storage/v1"


@pytest.mark.parametrize(
    "env",
    [
        {"AZURE_OPENAI_API_KEY": "k"},  # no endpoint
        {
            "AWS_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "a",
            "AWS_SECRET_ACCESS_KEY": "b",
        },  # no service
        {"KILO_AWS_SERVICE": "s3", "AWS_REGION": "eu-west-1"},  # no credentials
        {"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c"},  # no secret nor token file
    ],
)
def test_incomplete_services_are_not_enabled(env: dict[str, str]) -> None:
    assert default_config(env)[1] == []


def test_aws_with_web_identity() -> None:
    env = {
        "AWS_DEFAULT_REGION": "us-east-2",
        "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/app",
        "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
        "KILO_AWS_SERVICE": "sqs",
    }
    auth = default_config(env)[0].integrations["aws"].auth
    assert isinstance(auth, AwsSigV4Auth)
    assert (auth.region, auth.service, auth.role_arn) == ("us-east-2", "sqs", env["AWS_ROLE_ARN"])


def test_invalid_values_are_reported_like_a_file() -> None:
    with pytest.raises(ConfigError) as info:
        default_config({"SLACK_WEBHOOK_URL": "http://hooks.slack.com/services/plain-http"})
    (problem,) = info.value.problems
    assert problem.path == "integrations.slack_webhook.webhook_url"
    assert "plain-http" not in str(info.value)
    assert info.value.source == "built-in default (from the environment)"
