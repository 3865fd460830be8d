# Spending within a mandate's budget: a payment is allowed only when the mandate it is made under
# has room for it, and only when the enforcement point counts it. Authorize gives the policy the
# mandate with what remains of each of its usage limits (`input.mandate.remaining`, per meter,
# across the mandate and every mandate above it) and the consumption the request declares
# (`input.consume`), which Authorize charges atomically when this policy allows.
#
# Input (docs/design/authorize.md, "The decision input"):
#   input.action, input.resource.attributes.{amount, currency}
#   input.mandate.{id, remaining: {"<meter>": number}, uses_remaining}   (absent: no mandate)
#   input.consume.{meter, amount, idempotency_key}                        (absent: nothing declared)
# Data (mandate_budget):
#   spending_actions   action patterns that spend ("payments.*"); each must declare its spend
#   meter_prefix       the budget's meter is <prefix><currency> (default "amount:")
#
# Reasons ({"code", "message"}), stable codes:
#   mandate_missing        no input.mandate: nothing to spend from
#   amount_missing         a spending action without a positive numeric amount and a currency
#   consumption_missing    a spending action that declares no consumption of the amount in the
#                          currency's meter (it would spend without counting)
#   budget_exceeded        the amount is more than what remains of the mandate's budget
#   uses_exhausted         no uses remain (uses_remaining <= 0)
package mandate.authz

import rego.v1

# METADATA
# entrypoint: true
decision := {
	"allow": count(deny) == 0,
	"reasons": sort(deny),
	"obligations": [],
}

reason(code, message) := {"code": code, "message": message}

default prefix := "amount:"

prefix := data.mandate_budget.meter_prefix

default spending_actions := []

spending_actions := data.mandate_budget.spending_actions

spending if {
	some pattern in spending_actions
	action_matches(pattern, input.action)
}

deny contains reason("mandate_missing", "no mandate applies to this request") if not is_string(input.mandate.id)

amount := input.resource.attributes.amount

currency := input.resource.attributes.currency

meter := concat("", [prefix, currency])

priced if {
	is_number(amount)
	amount > 0
	is_string(currency)
}

deny contains reason("amount_missing", "a payment states no positive amount and currency") if {
	spending
	not priced
}

deny contains reason("consumption_missing", msg) if {
	spending
	priced
	not counted
	msg := sprintf("a payment of %v %s must declare its consumption of %s", [amount, currency, meter])
}

counted if {
	input.consume.meter == meter
	input.consume.amount == amount
}

deny contains reason("budget_exceeded", msg) if {
	spending
	priced
	left := input.mandate.remaining[meter]
	amount > left
	msg := sprintf("%v %s is more than the %v left of the mandate's budget", [amount, currency, left])
}

deny contains reason("uses_exhausted", "the mandate has no uses left") if input.mandate.uses_remaining <= 0

# "orders.read" matches itself, "orders.*" every action under "orders.", "*" every action.
action_matches(pattern, action) if {
	is_string(action)
	pattern == action
}

action_matches("*", action) if is_string(action)

action_matches(pattern, action) if {
	is_string(pattern)
	is_string(action)
	endswith(pattern, ".*")
	startswith(action, trim_suffix(pattern, "*"))
}
