-- count
SELECT COUNT(*) AS "count"
FROM "analytics"."customers" AS "p"
WHERE ((SELECT COALESCE(SUM("r1"."amount"), 0)
        FROM "analytics"."orders" AS "r1"
        WHERE "r1"."customer_id" = "p"."customer_id") > CAST(? AS DOUBLE)
  AND (SELECT AVG("r2"."amount")
        FROM "analytics"."orders" AS "r2"
        WHERE "r2"."customer_id" = "p"."customer_id") BETWEEN CAST(? AS DOUBLE) AND CAST(? AS DOUBLE)
  AND (SELECT MIN("r3"."amount")
        FROM "analytics"."orders" AS "r3"
        WHERE "r3"."customer_id" = "p"."customer_id") < CAST(? AS DOUBLE)
  AND (SELECT MAX("r4"."amount")
        FROM "analytics"."orders" AS "r4"
        WHERE "r4"."customer_id" = "p"."customer_id") NOT BETWEEN CAST(? AS DOUBLE) AND CAST(? AS DOUBLE)
  AND (SELECT COUNT(*)
        FROM "analytics"."events" AS "r5"
        WHERE "r5"."customer_id" = "p"."customer_id"
          AND "r5"."occurred_at" >= CAST(? AS TIMESTAMP) AND "r5"."occurred_at" <= CAST(? AS TIMESTAMP)
          AND ("r5"."event_type" IN (?, ?)
              OR NOT COALESCE("r5"."properties" IS NULL, FALSE))) = ?)

-- members
SELECT "p"."customer_id", "p"."lifetime_value"
FROM "analytics"."customers" AS "p"
WHERE ((SELECT COALESCE(SUM("r1"."amount"), 0)
        FROM "analytics"."orders" AS "r1"
        WHERE "r1"."customer_id" = "p"."customer_id") > CAST(? AS DOUBLE)
  AND (SELECT AVG("r2"."amount")
        FROM "analytics"."orders" AS "r2"
        WHERE "r2"."customer_id" = "p"."customer_id") BETWEEN CAST(? AS DOUBLE) AND CAST(? AS DOUBLE)
  AND (SELECT MIN("r3"."amount")
        FROM "analytics"."orders" AS "r3"
        WHERE "r3"."customer_id" = "p"."customer_id") < CAST(? AS DOUBLE)
  AND (SELECT MAX("r4"."amount")
        FROM "analytics"."orders" AS "r4"
        WHERE "r4"."customer_id" = "p"."customer_id") NOT BETWEEN CAST(? AS DOUBLE) AND CAST(? AS DOUBLE)
  AND (SELECT COUNT(*)
        FROM "analytics"."events" AS "r5"
        WHERE "r5"."customer_id" = "p"."customer_id"
          AND "r5"."occurred_at" >= CAST(? AS TIMESTAMP) AND "r5"."occurred_at" <= CAST(? AS TIMESTAMP)
          AND ("r5"."event_type" IN (?, ?)
              OR NOT COALESCE("r5"."properties" IS NULL, FALSE))) = ?)
ORDER BY "p"."customer_id"
LIMIT 100

-- args
1: string "500"
2: string "20"
3: string "200"
4: string "100"
5: string "0"
6: string "10"
7: string "2025-05-31 12:00:00"
8: string "2025-06-30 12:00:00"
9: string "checkout"
10: string "add_to_cart"
11: int64 0
