-- Sieve of Eratosthenes, equivalent to sieve.iasm: counts the primes below
-- 10,000,000 in an array-like table. Prints 664579.
local n = 10000000
local composite = {}
for k = 1, n - 1 do
  composite[k] = false
end

local count = 0
for i = 2, n - 1 do
  if not composite[i] then
    count = count + 1
    if i * i < n then
      for j = i * i, n - 1, i do
        composite[j] = true
      end
    end
  end
end
print(count)
