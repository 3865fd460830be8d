# The policy of `mandate demo mcp` (issue 19): which MCP messages an agent acting under a mandate
# may send to the demo MCP server. Authorize decides in access-token mode, so the subject (the human),
# the actors (the agent) and the token's scopes come from the verified token; the action and the
# resource come from the tool's COAZ-MCP mapping (a declared `x-authzen-mapping`, or the binding's
# default: action "tools/call" on resource {"type": "tool", "id": <tool name>}).
#
# Data (data.mcp_demo):
#   server_methods   MCP methods on the server as a whole, allowed to any token for this server
#   tools            default-mapped tools and the scope each needs
#   agents_may_not   actions an agent never does, whatever its mandate: a human does them
#   step_up          actions needing a strong authentication: RFC 9470 step-up
#
# Reasons ({"code", "message"}), stable codes:
#   scope_missing         the action (or the default-mapped tool's scope) is not among the token's scopes
#   tool_unknown          tools/call of a tool that is neither declared nor listed in data.mcp_demo.tools
#   agent_not_allowed     an agent asks for an action in agents_may_not
#   step_up_required      a step_up action, and the human's amr shows no strong authentication
# Obligations: {"type": "step_up", "acr_values": ...} with step_up_required, which the MCP kit turns
# into a 401 `insufficient_user_authentication` challenge (RFC 9470 §3).
package mandate.authz

import rego.v1

# METADATA
# entrypoint: true
decision := {
	"allow": allow,
	"reasons": sort(deny),
	"obligations": obligations,
}

default allow := false

allow if {
	count(deny) == 0
	permitted
}

config := data.mcp_demo

# Initialize, list tools...: any token for this server (its audience is checked by Authorize).
permitted if input.action in config.server_methods

# A tool without a declared mapping: the binding's default mapping, allowed with its scope.
permitted if default_mapped_tool_scope in input.token.scopes

# A declared mapping names a business action: allowed with that scope.
permitted if input.action in input.token.scopes

default_mapped_tool_scope := config.tools[input.resource.id] if {
	input.action == "tools/call"
	input.resource.type == "tool"
}

deny contains reason("tool_unknown", "the tool is not one this policy knows") if {
	input.action == "tools/call"
	not default_mapped_tool_scope
}

# A scope would not help an agent with what agents never do: that deny alone says why.
deny contains reason("scope_missing", "the token's scopes do not include this action") if {
	not input.action in config.server_methods
	not permitted
	not input.action == "tools/call"
	not agent_forbidden
}

deny contains reason("scope_missing", "the token's scopes do not include this tool's scope") if {
	default_mapped_tool_scope
	not default_mapped_tool_scope in input.token.scopes
}

agent_forbidden if {
	input.action in config.agents_may_not
	count(input.actors) > 0
}

deny contains reason("agent_not_allowed", msg) if {
	agent_forbidden
	msg := sprintf("%s is for humans: no mandate lets an agent do it", [input.action])
}

strong_authentication if {
	some method in as_list(object.get(input.subject.attributes, "amr", []))
	method in config.step_up.accepted_amr
}

deny contains reason("step_up_required", msg) if {
	input.action in config.step_up.actions
	not strong_authentication
	msg := sprintf("%s needs a stronger authentication (%s)", [input.action, config.step_up.acr_values])
}

obligations := [o | o := step_up]

step_up := {"type": "step_up", "acr_values": config.step_up.acr_values} if {
	some r in deny
	r.code == "step_up_required"
}

reason(code, message) := {"code": code, "message": message}

# A list, or [] for anything else (Mandate's compiler fails `some .. in` over a non-collection).
as_list(x) := x if is_array(x)

as_list(x) := [] if not is_array(x)
