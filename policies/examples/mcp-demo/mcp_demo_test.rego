package mandate.authz

import rego.v1

# The decision input Authorize makes in access-token mode of an MCP message mapped by COAZ-MCP:
# alice (human, password sign-in) through the demo agent, with the token's scopes.
message(action, resource, scopes, amr) := {
	"version": 1,
	"tenant": "demo",
	"subject": {"id": "dev-alice", "kind": "human", "attributes": {"amr": amr}},
	"actors": [{"id": "demo-agent", "kind": "agent", "attributes": {}}],
	"action": action,
	"resource": resource,
	"token": {"scopes": scopes, "aud": ["http://127.0.0.1:4470/mcp"], "authorization_details": []},
	"mandate": {"id": "mdt_1", "uses_remaining": 10},
	"context": {"time": 1700000000000},
}

agent_call(action, resource) := d if {
	d := decision with input as message(action, resource, ["orders.read", "payments.send"], ["pwd"])
}

tool(name) := {"type": "tool", "id": name}

order(id) := {"type": "order", "id": id, "attributes": {}}

server := {"type": "mcp_server", "id": "http://127.0.0.1:4470/mcp"}

codes(d) := [r.code | some r in d.reasons]

test_server_methods_allowed if {
	agent_call("initialize", server).allow
	agent_call("tools/list", server).allow
}

test_default_mapped_tool_allowed_with_its_scope if {
	d := agent_call("tools/call", tool("orders_list"))
	d.allow
	d.reasons == []
	d.obligations == []
}

test_default_mapped_tool_needs_its_scope if {
	d := decision with input as message("tools/call", tool("orders_list"), ["payments.send"], ["pwd"])
	not d.allow
	codes(d) == ["scope_missing"]
}

test_unknown_tool_denied if {
	d := agent_call("tools/call", tool("delete_everything"))
	not d.allow
	codes(d) == ["tool_unknown"]
}

test_declared_action_allowed_with_its_scope if {
	agent_call("orders.read", order("ord_1001")).allow
}

test_declared_action_needs_its_scope if {
	d := decision with input as message("orders.read", order("ord_1001"), ["payments.send"], ["pwd"])
	not d.allow
	codes(d) == ["scope_missing"]
}

test_agents_never_cancel if {
	d := decision with input as message("orders.cancel", order("ord_1001"), ["orders.read", "orders.cancel"], ["pwd"])
	not d.allow
	codes(d) == ["agent_not_allowed"]
}

# Not a scope problem (which the MCP kit would answer with a step-up challenge for the scope).
test_agents_never_cancel_even_without_the_scope if {
	codes(agent_call("orders.cancel", order("ord_1001"))) == ["agent_not_allowed"]
}

test_humans_may_cancel_with_the_scope if {
	human := object.union(message("orders.cancel", order("ord_1001"), ["orders.cancel"], ["pwd"]), {"actors": []})
	d := decision with input as human
	d.allow
}

test_payment_needs_step_up if {
	d := agent_call("payments.send", {"type": "payment", "id": "ord_1001", "attributes": {"amount": 20}})
	not d.allow
	codes(d) == ["step_up_required"]
	d.obligations == [{"type": "step_up", "acr_values": "urn:mandate:acr:mfa"}]
}

test_payment_allowed_after_mfa if {
	input_mfa := message("payments.send", {"type": "payment", "id": "ord_1001"}, ["payments.send"], ["pwd", "mfa"])
	d := decision with input as input_mfa
	d.allow
	d.obligations == []
}

test_no_step_up_obligation_on_other_denials if {
	d := agent_call("orders.cancel", order("ord_1001"))
	d.obligations == []
}
