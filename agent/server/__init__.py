"""The gRPC surface: the IntegrationAgent servicer, health, reflection, error mapping."""

from agent.server.builder import GrpcServer
from agent.server.callers import CallerAuthenticator
from agent.server.servicer import IntegrationAgentServicer

__all__ = ["CallerAuthenticator", "GrpcServer", "IntegrationAgentServicer"]
