-- count
SELECT COUNT(*) AS "count"
FROM "customers" AS "p"
WHERE ((SELECT COALESCE(SUM("r1"."amount"), 0)
        FROM "orders" AS "r1"
        WHERE "r1"."customer_id" = "p"."customer_id") > ?
  AND (SELECT AVG("r2"."amount")
        FROM "orders" AS "r2"
        WHERE "r2"."customer_id" = "p"."customer_id") BETWEEN ? AND ?
  AND (SELECT MIN("r3"."amount")
        FROM "orders" AS "r3"
        WHERE "r3"."customer_id" = "p"."customer_id") < ?
  AND (SELECT MAX("r4"."amount")
        FROM "orders" AS "r4"
        WHERE "r4"."customer_id" = "p"."customer_id") NOT BETWEEN ? AND ?
  AND (SELECT COUNT(*)
        FROM "events" AS "r5"
        WHERE "r5"."customer_id" = "p"."customer_id"
          AND "r5"."occurred_at" >= ? AND "r5"."occurred_at" <= ?
          AND ("r5"."event_type" IN (?, ?)
              OR NOT COALESCE("r5"."properties" IS NULL, FALSE))) = ?)

-- members
SELECT "p"."customer_id", "p"."lifetime_value"
FROM "customers" AS "p"
WHERE ((SELECT COALESCE(SUM("r1"."amount"), 0)
        FROM "orders" AS "r1"
        WHERE "r1"."customer_id" = "p"."customer_id") > ?
  AND (SELECT AVG("r2"."amount")
        FROM "orders" AS "r2"
        WHERE "r2"."customer_id" = "p"."customer_id") BETWEEN ? AND ?
  AND (SELECT MIN("r3"."amount")
        FROM "orders" AS "r3"
        WHERE "r3"."customer_id" = "p"."customer_id") < ?
  AND (SELECT MAX("r4"."amount")
        FROM "orders" AS "r4"
        WHERE "r4"."customer_id" = "p"."customer_id") NOT BETWEEN ? AND ?
  AND (SELECT COUNT(*)
        FROM "events" AS "r5"
        WHERE "r5"."customer_id" = "p"."customer_id"
          AND "r5"."occurred_at" >= ? AND "r5"."occurred_at" <= ?
          AND ("r5"."event_type" IN (?, ?)
              OR NOT COALESCE("r5"."properties" IS NULL, FALSE))) = ?)
ORDER BY "p"."customer_id"
LIMIT 100

-- args
1: float64 500
2: float64 20
3: float64 200
4: float64 100
5: float64 0
6: float64 10
7: string "2025-05-31 12:00:00"
8: string "2025-06-30 12:00:00"
9: string "checkout"
10: string "add_to_cart"
11: int64 0
