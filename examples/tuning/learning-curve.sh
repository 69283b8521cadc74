#!/bin/sh
# A stand-in for a training script, for trying studies in seconds: it "trains" for 27 epochs, printing a validation
# loss after each as "intermediate EPOCH=LOSS" (what pruners act on), then "objective=LOSS".
# Its parameters come as AIMASS_PARAM_<NAME> variables; momentum exists only when the optimizer is sgd.
exec awk -v opt="$AIMASS_PARAM_OPTIMIZER" -v lr="$AIMASS_PARAM_LR" -v mom="${AIMASS_PARAM_MOMENTUM:-0}" \
         -v beta="${AIMASS_PARAM_BETA1:-0.9}" -v width="$AIMASS_PARAM_WIDTH" 'BEGIN {
  # The best final loss comes with lr near 3e-3 (adam) or 3e-2 with high momentum (sgd), and a wide layer.
  best = (opt == "adam") ? log(3e-3) : log(3e-2);
  d = log(lr) - best; floor = 0.05 + 0.08 * d * d + 20 / width;
  if (opt == "sgd") floor += 0.3 * (0.95 - mom) * (0.95 - mom); else floor += 0.5 * (0.9 - beta) * (0.9 - beta);
  rate = (opt == "adam") ? 0.35 : 0.2;
  for (epoch = 1; epoch <= 27; epoch++) {
    loss = floor + 2.0 * exp(-rate * epoch);
    printf "epoch %d done\nintermediate %d=%.6f\n", epoch, epoch, loss;
    fflush();
    system("sleep 0.05");
  }
  printf "objective=%.6f\n", loss;
}'
