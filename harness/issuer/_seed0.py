"""RSA-2048 primes derived for seed 0 (``keys._derive`` output, checked by a test): fast cold start by default."""

from __future__ import annotations

# (key size, label) -> (p, q); regenerate with keys._derive_rsa_primes(keys._material("RSA", 2048, 0, label), 2048).
PRIMES: dict[tuple[int, str], tuple[int, int]] = {
    (2048, "sig-0"): (
        int(
            "e4bce9f2c59602b48b06a6b462bf4d332ed815a3772c6350c82dd9119d65a41ca0ec636372e91fa57495e882"
            "69aa909763702b786477e5218e915bb8215ea8e564ed795d7be877e2e565da967da88b62a90a5c224e5c0d5f"
            "cd8b6ce0cbb2ac647c58ac8bb74bd564572c53b6449330218edf744b3d17adebd84123b818028315",
            16,
        ),
        int(
            "d14326756a7115b7c732d56ef6a281de7bfb00082c4910ae8dddb3102acf45a0705e649d903fc624f74126f9"
            "21d9a95573da4a7fb72f058220821dd7567383aeced45ca80879f1915465b3f405cea470b2c94658c42efe7e"
            "e46dd6a6da740a498b5fd167fc7648dcf34ab8c86017c48758bbde25b429272173995e351da6dce5",
            16,
        ),
    ),
    (2048, "sig-1"): (
        int(
            "fa7fffd64049cef5e77fdf59703e293e08cfecbc06f1fb910d9293851fb4e4c01f75e675b9dbafab229ad8b6"
            "a3b8cb2ecb8438121288a1a4d0edc464f1fb7deecfdc4d5cabbb2bad3928abab3ae190c2b9dea852adb0f17b"
            "d5aa23f96bb8a749307006d0eab101b5bfebe7aa7515e4da30f9eb98e687a9e0b4e24d700d84a979",
            16,
        ),
        int(
            "c0b1fd37e3656be99b067c53798360d54fb21f98d5f10a501b37a07643a02092b38807eb0a9aa83f16c0be33"
            "8f6545a6b48208b7e20e4923d20a94af5f479816259bafffc89e8b3064cbb6dd886f8467528a77035eaaf2d6"
            "f0e44992594e6b263d09772493ac12f788ce2e39d7a9ae359bdabb02518cd5a1f389241dc004c6f5",
            16,
        ),
    ),
    (2048, "sig-2"): (
        int(
            "f3bc2909a7671c773de848b32700870715a9919866e2858a7b8fe520d1cf4632f13e8edcc0ee472df77d6735"
            "27ff8a52c3aef3291d5f92eb3bb3eab5a04cbb4096a2e46ab43d1946285b443fe3ee67fc1c8db68135d9c288"
            "b14acd4edc43a63623ad3d2ce7556721f377e15972e2dc4052213b27ae0caa62386a5a377b9edd2f",
            16,
        ),
        int(
            "f18c9bc218dc0f80a5b8ca0dcc1c8b1cc18e6cb5766b93bd431982b977efc42afff8911d135d62987f68c6a4"
            "f6660657db287b28a13d4261d21038b009f67b0347d39fbcf8c4c767dbb4a277d0216d3bdb41c2a8a35a49fe"
            "fb2e510a5d84971dc9241e01ba308316295d93b0273de39853a71093de99a9f1ca7f76b71f6a3bdb",
            16,
        ),
    ),
    (2048, "sig-3"): (
        int(
            "f62f7ee7b0c6f495d8a342f230724c3191df991f77db47d524aedc628746c5edcf8508a28b500db55074d254"
            "9d7dd544e1030980cda87accb04f437395498c5264d13c78c54e512f9d608659bb70b0a1185ff4b18687b1c8"
            "b0acf77f709c508ef3ef2c3e36b521e4d1d8b797a450af845043af71b4070a888a423ccc6623b5ff",
            16,
        ),
        int(
            "e5a48180276c8446fb5aa74ef27d0e7b10b4d040eb62eba277b24b0e350407fd28b736a030e8dc4358903fb4"
            "69e703a13c381ce633899b035f9e5433a20cfa9c5e7f935350b3a0ccd29da3cc0c6b940c784712fd01e9fe9b"
            "7eb9e94aa0f110dd3ff6524370382b861917f5609a5a59ffc7bc0ea4fa853b5e8957395b65535b83",
            16,
        ),
    ),
    (2048, "enc-0"): (
        int(
            "f0273965d69be6ee154dae95a74271ad600f0b9b322b34182d919ff3b74053de3bbfa615b56a7aa445bcbbce"
            "ab4db2f89fcec630858795e9198b55ba4da07a37dc47137e8722d1cad2a17c1a441b366fead3203c75b3744b"
            "8ec0040c3d67b645587a839366c226a61ded8491656b5f6f7ff9d6fc027ed642af726f693dc22c5f",
            16,
        ),
        int(
            "c57b94849383cb34aa098b0f1890c02eeb37bbf6c056b1a29ef48dec829deeb2a80e505b691485f6964acc56"
            "1a3d9331b4bd5ad5010d9599ed72dd94bfd85048918eeaaf7069cb3afb517b1717327bb49f3f347e6dd64bd4"
            "f857a95af18d7f93e64f4a4aafbe3b3170df2a5f29b8b227ac109ff0a3a671ec0220779ba1cdc1fd",
            16,
        ),
    ),
    (2048, "retired-0"): (
        int(
            "c9af9f0a14c2c6ccdc6d38c38ec98b9462a569354d805b3ebf97d43725c9c771b8e2f3f8dc815ad981c9f996"
            "e3feedf9b95fc53fa5f6eb155b909fd87332faf00b51355da39858594bbe4a99921b4bdec4f780b979c0f306"
            "5790106d5297ed7fb5602374b304a2175fc854ed1d48ec43cee1c50e2f5e969acc89ee3fffb856cd",
            16,
        ),
        int(
            "c2345e1cb0d0c8342535de6bcaf65744a456496d4de056db8ddc1f442f856f0b3576a1dddc8555c5317d542c"
            "6ef8563da16a2d40e4dcdca0c935cb709c295fadb0da4ca38bda1c402f5ae8c87d05a630e895f0f297de0b3a"
            "8eced41deee2a13b578e52f471d6816be03bd0d92d768eaa50e020073ceb6dcdfc63136f338be2ef",
            16,
        ),
    ),
    (2048, "attacker-0"): (
        int(
            "c8a0e193cf96921561974a1801dad78ea8523b01aaabcf8d4ea443384d8c6666ab2f65e1f97d7cba39ca7de4"
            "779234c752e75b137d22167a94e33db33bf7f25245012bab67e427254b789225c22ae3a1d17f541cea9eb6e6"
            "24e55e92a3150a79bedec42540fe1e589d28272b5ed6519e45e78e8964d049ae9cebc3b4ef6050e7",
            16,
        ),
        int(
            "c182bdb161527b866803b8289830d27e3719be5db9e36c3b568d1eadda341286bfa217a04b82157fc73472f4"
            "bfac1f9fe14f937904925ab7a9dd411a855ab59bb80d5dcf4d4ccf8949036fbade4ca039dc5e73520439c0f0"
            "1bd94e34053494f535cdfa49624efb2df05b0aab407bd1e51be20a0f694d7ea37f4e3ec63ed23599",
            16,
        ),
    ),
}
