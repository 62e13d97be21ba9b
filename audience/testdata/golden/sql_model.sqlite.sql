-- count
SELECT COUNT(*) AS "count"
FROM (
SELECT customer_id, state, lifetime_value AS spend, notes AS memo, phone AS contact
FROM analytics.customers
WHERE lifetime_value > 500 -- big spenders
) AS "p"
WHERE ("p"."state" IN (?, ?)
  AND (SELECT MAX("r1"."amount")
        FROM "orders" AS "r1"
        WHERE "r1"."customer_id" = "p"."customer_id") >= ?)

-- members
SELECT "p"."customer_id", "p"."spend"
FROM (
SELECT customer_id, state, lifetime_value AS spend, notes AS memo, phone AS contact
FROM analytics.customers
WHERE lifetime_value > 500 -- big spenders
) AS "p"
WHERE ("p"."state" IN (?, ?)
  AND (SELECT MAX("r1"."amount")
        FROM "orders" AS "r1"
        WHERE "r1"."customer_id" = "p"."customer_id") >= ?)
ORDER BY "p"."customer_id"
LIMIT 100

-- args
1: string "CA"
2: string "NY"
3: float64 250
