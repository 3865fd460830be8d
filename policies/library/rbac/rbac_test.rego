package mandate.authz

import rego.v1

request(subject, action, resource) := {
	"version": 1,
	"tenant": "acme",
	"subject": object.union({"kind": "human", "attributes": {}}, subject),
	"actors": [],
	"action": action,
	"resource": object.union({"attributes": {}}, resource),
	"token": {"scopes": [], "aud": [], "authorization_details": []},
	"context": {"time": 1000},
}

order := {"type": "order", "id": "o-1"}

invoice := {"type": "invoice", "id": "i-1"}

codes(d) := [r.code | some r in d.reasons]

# Roles from identity traits

test_trait_role_exact_permission if {
	d := decision with input as request({"id": "alice", "attributes": {"roles": ["viewer"]}}, "orders.read", order)
	d.allow
	d.reasons == []
	d.obligations == []
}

test_trait_role_without_the_permission if {
	d := decision with input as request({"id": "alice", "attributes": {"roles": ["viewer"]}}, "orders.write", order)
	not d.allow
	d.reasons == [{"code": "permission_missing", "message": "no role of the subject (viewer) permits orders.write"}]
}

test_family_permission if {
	d := decision with input as request({"id": "alice", "attributes": {"roles": ["order_clerk"]}}, "orders.delete", order)
	d.allow
}

test_family_permission_needs_the_prefix_and_dot if {
	subject := {"id": "alice", "attributes": {"roles": ["order_clerk"]}}
	not decision.allow with input as request(subject, "ordersx.read", order)
	not decision.allow with input as request(subject, "orders", order)
	not decision.allow with input as request(subject, "invoices.read", invoice)
}

test_wildcard_permission if {
	d := decision with input as request({"id": "root", "attributes": {"roles": ["admin"]}}, "anything.at.all", order)
	d.allow
}

test_any_of_several_roles if {
	subject := {"id": "alice", "attributes": {"roles": ["viewer", "billing"]}}
	decision.allow with input as request(subject, "payments.create", invoice)
	decision.allow with input as request(subject, "orders.read", order)
	not decision.allow with input as request(subject, "orders.write", order)
}

test_unknown_trait_role_grants_nothing if {
	d := decision with input as request({"id": "alice", "attributes": {"roles": ["superhero"]}}, "orders.read", order)
	not d.allow
	codes(d) == ["permission_missing"]
}

test_non_string_trait_roles_ignored if {
	d := decision with input as request({"id": "alice", "attributes": {"roles": [{"name": "admin"}, 7]}}, "orders.read", order)
	not d.allow
	codes(d) == ["role_missing"]
}

test_no_roles if {
	d := decision with input as request({"id": "alice"}, "orders.read", order)
	not d.allow
	d.reasons == [{"code": "role_missing", "message": "the subject has no role for this resource"}]
}

test_missing_action_denied if {
	r := object.remove(request({"id": "alice", "attributes": {"roles": ["viewer"]}}, "x", order), ["action"])
	d := decision with input as r
	not d.allow
	d.reasons == [{"code": "permission_missing", "message": "no role of the subject (viewer) permits null"}]
}

# Role bindings in data

test_global_binding_by_subject if {
	d := decision with input as request({"id": "carol"}, "orders.write", order)
	d.allow
}

test_binding_for_another_subject_does_not_apply if {
	d := decision with input as request({"id": "mallory"}, "orders.write", order)
	codes(d) == ["role_missing"]
}

test_group_binding if {
	subject := {"id": "frank", "attributes": {"groups": ["finance"]}}
	decision.allow with input as request(subject, "invoices.void", invoice)
	not decision.allow with input as request(subject, "orders.read", order)
}

test_group_binding_needs_the_group if {
	d := decision with input as request({"id": "frank", "attributes": {"groups": ["sales"]}}, "invoices.read", invoice)
	codes(d) == ["role_missing"]
}

test_resource_scoped_binding_on_its_resource if {
	d := decision with input as request({"id": "dave"}, "orders.write", {"type": "order", "id": "o-42"})
	d.allow
}

test_resource_scoped_binding_on_another_resource if {
	d := decision with input as request({"id": "dave"}, "orders.write", {"type": "order", "id": "o-43"})
	not d.allow
	codes(d) == ["role_missing"]
}

test_resource_scoped_binding_needs_the_type_too if {
	d := decision with input as request({"id": "dave"}, "orders.write", {"type": "invoice", "id": "o-42"})
	codes(d) == ["role_missing"]
}

test_type_scoped_binding if {
	decision.allow with input as request({"id": "erin"}, "invoices.read", {"type": "invoice", "id": "i-9"})
	d := decision with input as request({"id": "erin"}, "orders.read", order)
	codes(d) == ["role_missing"]
}

test_type_scoped_binding_still_needs_the_permission if {
	d := decision with input as request({"id": "erin"}, "invoices.void", {"type": "invoice", "id": "i-9"})
	codes(d) == ["permission_missing"]
}

test_traits_and_bindings_combine if {
	d := decision with input as request({"id": "dave", "attributes": {"roles": ["viewer"]}}, "orders.write", order)
	d.reasons == [{"code": "permission_missing", "message": "no role of the subject (viewer) permits orders.write"}]
	decision.allow with input as request({"id": "dave", "attributes": {"roles": ["viewer"]}}, "orders.write", {"type": "order", "id": "o-42"})
}

test_roles_and_bindings_from_other_data if {
	r := request({"id": "zed"}, "reports.export", {"type": "report", "id": "r-1"})
	decision.allow with input as r with data.roles as {"analyst": ["reports.*"]} with data.bindings as [{"subject": "zed", "role": "analyst"}]
	not decision.allow with input as r with data.roles as {} with data.bindings as [{"subject": "zed", "role": "analyst"}]
}

test_no_data_denies if {
	d := decision with input as request({"id": "carol", "attributes": {"roles": ["admin"]}}, "orders.read", order) with data.roles as {} with data.bindings as []
	not d.allow
	codes(d) == ["permission_missing"]
}

test_roles_not_a_list if {
	d := decision with input as request({"id": "alice", "attributes": {"roles": "admin", "groups": "finance"}}, "orders.read", order)
	not d.allow
	codes(d) == ["role_missing"]
}
