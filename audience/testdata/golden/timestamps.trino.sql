-- count
SELECT COUNT(*) AS "count"
FROM "analytics"."customers" AS "p"
WHERE (("p"."signup_at" >= CAST(? AS TIMESTAMP) AND "p"."signup_at" < CAST(? AS TIMESTAMP))
  OR "p"."signup_at" = CAST(? AS TIMESTAMP)
  OR ("p"."signup_at" < CAST(? AS TIMESTAMP) OR "p"."signup_at" >= CAST(? AS TIMESTAMP))
  OR "p"."signup_at" >= CAST(? AS TIMESTAMP)
  OR "p"."signup_at" < CAST(? AS TIMESTAMP)
  OR ("p"."signup_at" >= CAST(? AS TIMESTAMP) AND "p"."signup_at" < CAST(? AS TIMESTAMP))
  OR ("p"."signup_at" < CAST(? AS TIMESTAMP) OR "p"."signup_at" > CAST(? AS TIMESTAMP))
  OR "p"."birth_date" = CAST(? AS DATE)
  OR ("p"."birth_date" >= CAST(? AS DATE) AND "p"."birth_date" <= CAST(? AS DATE))
  OR ("p"."signup_at" >= CAST(? AS TIMESTAMP) AND "p"."signup_at" <= CAST(? AS TIMESTAMP)))

-- members
SELECT "p"."customer_id", "p"."signup_at", "p"."birth_date"
FROM "analytics"."customers" AS "p"
WHERE (("p"."signup_at" >= CAST(? AS TIMESTAMP) AND "p"."signup_at" < CAST(? AS TIMESTAMP))
  OR "p"."signup_at" = CAST(? AS TIMESTAMP)
  OR ("p"."signup_at" < CAST(? AS TIMESTAMP) OR "p"."signup_at" >= CAST(? AS TIMESTAMP))
  OR "p"."signup_at" >= CAST(? AS TIMESTAMP)
  OR "p"."signup_at" < CAST(? AS TIMESTAMP)
  OR ("p"."signup_at" >= CAST(? AS TIMESTAMP) AND "p"."signup_at" < CAST(? AS TIMESTAMP))
  OR ("p"."signup_at" < CAST(? AS TIMESTAMP) OR "p"."signup_at" > CAST(? AS TIMESTAMP))
  OR "p"."birth_date" = CAST(? AS DATE)
  OR ("p"."birth_date" >= CAST(? AS DATE) AND "p"."birth_date" <= CAST(? AS DATE))
  OR ("p"."signup_at" >= CAST(? AS TIMESTAMP) AND "p"."signup_at" <= CAST(? AS TIMESTAMP)))
ORDER BY "p"."customer_id"
LIMIT 100

-- args
1: string "2024-02-29 00:00:00"
2: string "2024-03-01 00:00:00"
3: string "2024-02-29 08:30:00"
4: string "2024-03-01 00:00:00"
5: string "2024-03-02 00:00:00"
6: string "2025-01-02 00:00:00"
7: string "2021-01-02 00:00:00"
8: string "2023-01-01 00:00:00"
9: string "2023-07-01 00:00:00"
10: string "2023-01-01 00:00:00"
11: string "2023-06-30 12:00:00.5"
12: string "1990-05-17"
13: string "2005-07-05"
14: string "2025-06-30"
15: string "2025-06-23 12:00:00"
16: string "2025-06-30 12:00:00"
