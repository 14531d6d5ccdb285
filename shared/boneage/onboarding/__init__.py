"""Onboarding a hospital: its gateway role, its results queue and its registry entry, as one stack.

``template.render(H, main)`` is the per-hospital CloudFormation template, with literal ARNs and prefixes;
``deploy.deploy_hospital`` deploys it with boto3; ``boneage onboard`` (``boneage.commands.onboard``) is the
command, and ``boneage.devstack`` deploys the same rendering into the local emulator. README, "Onboard a
hospital".
"""

from __future__ import annotations

from .template import HospitalNames, MainStack, RolesAnywhere, credential_process_config, render, role_policy

__all__ = ["HospitalNames", "MainStack", "RolesAnywhere", "credential_process_config", "render", "role_policy"]
