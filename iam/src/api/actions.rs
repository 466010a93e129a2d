//! The action every RPC declares: what a caller's token must be granted, on the object's
//! resource path, for the call to proceed. The tenant-isolation test walks the proto's services
//! and fails for any RPC missing here.

/// (RPC, action). Tokens.IssueToken needs no token; Authz calls are checked as documented.
pub const ACTIONS: &[(&str, &str)] = &[
    ("CreateOrg", "iam:orgs:create"),
    ("GetOrg", "iam:orgs:get"),
    ("ListOrgs", "iam:orgs:list"),
    ("DeleteOrg", "iam:orgs:delete"),
    ("CreateProject", "iam:projects:create"),
    ("GetProject", "iam:projects:get"),
    ("ListProjects", "iam:projects:list"),
    ("DeleteProject", "iam:projects:delete"),
    ("CreateUser", "iam:users:create"),
    ("GetUser", "iam:users:get"),
    ("ListUsers", "iam:users:list"),
    ("UpdateUser", "iam:users:update"),
    ("DeleteUser", "iam:users:delete"),
    ("CreateGroup", "iam:groups:create"),
    ("GetGroup", "iam:groups:get"),
    ("ListGroups", "iam:groups:list"),
    ("AddGroupMember", "iam:groups:update"),
    ("RemoveGroupMember", "iam:groups:update"),
    ("DeleteGroup", "iam:groups:delete"),
    ("CreateServiceAccount", "iam:service-accounts:create"),
    ("GetServiceAccount", "iam:service-accounts:get"),
    ("ListServiceAccounts", "iam:service-accounts:list"),
    ("DeleteServiceAccount", "iam:service-accounts:delete"),
    ("CreateRole", "iam:roles:create"),
    ("GetRole", "iam:roles:get"),
    ("ListRoles", "iam:roles:list"),
    ("DeleteRole", "iam:roles:delete"),
    ("CreateBinding", "iam:bindings:create"),
    ("GetBinding", "iam:bindings:get"),
    ("ListBindings", "iam:bindings:list"),
    ("DeleteBinding", "iam:bindings:delete"),
    ("CreateAccessKey", "iam:access-keys:create"),
    ("ListAccessKeys", "iam:access-keys:list"),
    ("DeleteAccessKey", "iam:access-keys:delete"),
    ("QueryAudit", "iam:audit:list"),
    ("RotateSigningKey", "iam:signing-keys:rotate"),
    ("IssueToken", "none: the request carries credentials"),
    ("RefreshToken", "none: the request carries a refresh token"),
    ("RevokeToken", "iam:tokens:revoke on the token's principal, unless it is the caller's own"),
    ("ValidateToken", "none: answers only for a valid token"),
    ("Authorize", "iam:principals:authorize on system, unless asking for the caller's own token"),
    ("BatchAuthorize", "iam:principals:authorize on system, unless asking for the caller's own token"),
    ("ResolveAccessKey", "iam:access-keys:resolve on system"),
    ("Ping", "none: the benchmark's no-op"),
];

/// The action `rpc` declares.
pub fn action(rpc: &str) -> &'static str {
    ACTIONS.iter().find(|(name, _)| *name == rpc).map(|(_, a)| *a).unwrap_or("undeclared")
}
