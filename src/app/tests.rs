//! Tests of the application-layer observers (detection, TLS, HTTP/1.x) driven only through
//! `AppFlow`'s public API with real byte streams, and of `flow::reasm::Reassembler`.
//!
//! The TLS byte constants are real captured payloads (hex of `tcp.payload`, one constant entry per
//! frame). Most come from `captures/`; the TLS 1.3 ones were captured on loopback for these tests
//! (openssl 3.0 `s_server -tls1_3 -alpn h2,http/1.1` / `s_client -servername origin.lab
//! -alpn h2,http/1.1`, tcpdump on `lo`), since no capture in `captures/` negotiates TLS 1.3.
//!
//! Properties: parsers give identical events and summaries however a conversation is cut into
//! segments (every two-piece split, one byte per segment, random splits), with each event's frame
//! being the piece that carried the byte completing it; no input, segmentation or gap panics;
//! the reassembler reproduces the stream under reordering, duplicates and overlaps.

use super::http::{BODY_SNIPPET, MAX_ERRORS, MAX_HEADER_BYTES, MAX_PIPELINE, MAX_STATUS_KINDS};
use super::tls::{MAX_ALERTS, MAX_HANDSHAKE_MSG};
use super::*;
use crate::flow::reasm::Reassembler;
use crate::flow::Direction::{self, Orig, Resp};
use crate::flow::{FrameRef, StreamEvent};
use crate::time::Timestamp;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Real TLS bytes.
// ---------------------------------------------------------------------------------------------

/// captures/tls-alert-nginx-backleg.pcap frames 6 (TLS 1.2-only ClientHello, SNI backend.lab) and 8 (fatal alert 70 protocol_version).
const TLS12_PLAIN_ALERT: &[(Direction, &str)] = &[
    // frame 6: 208 bytes
    (Direction::Orig, concat!(
        "16030100cb010000c70303a9597bc641060f266857e9950ebcf1d2c870f29a4ff7d166ccf8988d676ac3c2000038c02c",
        "c030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c",
        "0035002f00ff0100006600000010000e00000b6261636b656e642e6c6162000b000403000102000a000c000a001d0017",
        "001e00190018002300000016000000170000000d002a0028040305030603080708080809080a080b0804080508060401",
        "05010601030303010302040205020602",
    )),
    // frame 8: 7 bytes
    (Direction::Resp, "15030300020246"),
];

/// captures/tls-alert-alpn-client.pcap frames 6 (ClientHello offering TLS 1.3..1.0, SNI proxy.lab, ALPN http/1.1) and 8 (fatal alert 120 no_application_protocol).
const TLS13_CH_ALPN_ALERT: &[(Direction, &str)] = &[
    // frame 6: 330 bytes
    (Direction::Orig, concat!(
        "1603010145010001410303435c6a947fa7d6809d40f2d7d93923190c12c47f5b62b807afd42a40a61a29ba202ebc927e",
        "7238f398dd2ddd71432028a238ecd5f5d907aa774b8d47bd6d0f9d30003e130213031301c02cc030009fcca9cca8ccaa",
        "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff010000ba",
        "0000000e000c00000970726f78792e6c6162000b000403000102000a00160014001d0017001e00190018010001010102",
        "01030104002300000010000b000908687474702f312e310016000000170000000d002a00280403050306030807080808",
        "09080a080b080408050806040105010601030303010302040205020602002b0009080304030303020301002d00020101",
        "003300260024001d00202c1ff5f5c17aa809ad0f9493b114d124cf7e74c0c74f6e9dae58fd0b19c83d73",
    )),
    // frame 8: 7 bytes
    (Direction::Resp, "15030300020278"),
];

/// captures/healthy-nginx-frontleg.pcap, tcp.port==53206, frames 46 (ClientHello SNI proxy.lab, ALPN h2+http/1.1, versions 1.3..1.0), 48 (ServerHello TLS 1.2 ALPN http/1.1 + Certificate + SKE + SHD in one segment), 50 (CKE, CCS, Finished), 51 (CCS, Finished), 52-54 (application data), 75 (encrypted alert); the server's frames 55-73 (application data records starting on a record boundary) are left out.
const TLS12_FULL: &[(Direction, &str)] = &[
    // frame 46: 517 bytes
    (Direction::Orig, concat!(
        "1603010200010001fc0303ed86c98fbd665c30b5a3c8e38546de1a6b71f4d617d7ef6a5a0d8529bd0fd7c320ba035fa1",
        "d3f235f65286ccc54e34bb5f617ac55e65310c60a046e4150cd40420003e130213031301c02cc030009fcca9cca8ccaa",
        "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff01000175",
        "0000000e000c00000970726f78792e6c6162000b000403000102000a00160014001d0017001e00190018010001010102",
        "010301040010000e000c02683208687474702f312e31001600000017000000310000000d002a00280403050306030807",
        "08080809080a080b080408050806040105010601030303010302040205020602002b0009080304030303020301002d00",
        "020101003300260024001d002098f6dddf3768949f54410a8a24e6a1356c7ae3f8b39385d63ad5b361ca95d51c001500",
        "b40000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000000",
    )),
    // frame 48: 668 bytes
    (Direction::Resp, concat!(
        "16030300700200006c030321928e12c8e28de1017862c1a5c77af0de74e58e491b7cd6e08eb4f3dee5698f20ab861df4",
        "725d2ce677c648911f77f8a9b5db6f7131ba4451b2b332dd04907ea5c02c000024ff0100010000000000000b00040300",
        "01020010000b000908687474702f312e310017000016030301a00b00019c0001990001963082019230820139a0030201",
        "02021433de5c205fb3c041987e12fbafbaa26a546bb481300a06082a8648ce3d04030230143112301006035504030c09",
        "70726f78792e6c6162301e170d3236313132363038323233385a170d3336313132333038323233385a30143112301006",
        "035504030c0970726f78792e6c61623059301306072a8648ce3d020106082a8648ce3d0301070342000449e31dad1bb7",
        "ff6b236fe792b6689ce4962094d291c218944f1b1785a01992be2f672c8a1e23df028f62aa83233faf99235914c2d222",
        "2ff7bd965067b51ffa06a3693067301d0603551d0e041604148d8b61a5a7fadd4db21269dcf92b2f0a24c95188301f06",
        "03551d230418301680148d8b61a5a7fadd4db21269dcf92b2f0a24c95188300f0603551d130101ff040530030101ff30",
        "140603551d11040d300b820970726f78792e6c6162300a06082a8648ce3d040302034700304402205fa99198f5a3c199",
        "6a2ba8809275c75e4f671b370da2dc1395a8632e41a97bdc02204dfad031f46ef3d72ce3def871b1dd94d82d10d658cd",
        "a286b1e7eae1696a971416030300740c00007003001d2033022a38914d747ee261106386f420e5a623a6c68994443180",
        "8d951732148b14040300483046022100aa167cb408902ef4171d600ca349e39f53fbc4c5a0001267ed94f9630cb35249",
        "022100fea036282c6988c03af26f1d73622f4de6c31bb323df9c086a1b149f12f60e5f16030300040e000000",
    )),
    // frame 50: 93 bytes
    (Direction::Orig, concat!(
        "16030300251000002120be66798be1dd13730166fd16da7333fc2f5c9eafbd949adef3d05b390f4c6911140303000101",
        "16030300282c3112204572a249764a309accd70e09f25c2ad0aac536f75094948111540ea514818ac88339f309",
    )),
    // frame 51: 51 bytes
    (Direction::Resp, concat!(
        "14030300010116030300288fa16786f75c533d4b10d4c046e9a3fde3c85a1defdd66bc622e770e4e5bd0cfea55290b17",
        "69f26c",
    )),
    // frame 52: 102 bytes
    (Direction::Orig, concat!(
        "17030300612c3112204572a24afa94bca6aa04b8f76160105ae765137f044fa4f829db999812f97843aaa201d6f403c4",
        "6e627c781e056d37770ca47ecbefb5add463a7a2d01c5bc5870b981643e024748c943d744b9ce66e39e6d12d3baf4d61",
        "606048e14e19",
    )),
    // frame 53: 249 bytes
    (Direction::Resp, concat!(
        "17030300f48fa16786f75c533e096033b10f964ebb2187daee752517d4e6ec5db8be9dd5d372a23218859859bb294103",
        "dbc79cd1be1d29ec3d41fe62a9c0513d1a0417959d98f24bfbd59d2434e6cc933cf1726215fa15f8b100b1b6da29e848",
        "a35774d4b6416b6b88fc2c1b560aebae7ad9dc4252edc74979c04f75ae5e3d2d4737581d3900f4d133a46b784df6168c",
        "59e939a183b71a77c2d2b7aa6c6da65e5acac09742f5c9a7c5a0bfe477ca281a14f69db993c82b82b4330fc5a1d1e567",
        "ce00ce440694d31ebdf50d11fb7508f99fdf0cfaa74516971d72c7dbf27c72d1f19edc6b226ef687125f408b6d624d9c",
        "440ed8e3702180d222",
    )),
    // frame 54: 111 bytes
    (Direction::Orig, concat!(
        "170303006a2c3112204572a24b4ac328a368cd24fd77bf761e4865613b7a6db943acd8ad1c0a3d9ed4a8d42953b35c70",
        "b4be798574b3e66eb451ef98249c205a57c576b24c75bbba0bd31cc9bace6164f29326fd2311ac44156f0c7f348cd2e3",
        "2ec2cc8c4820630517306db11cf6b7",
    )),
    // frame 75: 31 bytes
    (Direction::Orig, "150303001a2c3112204572a24ce50217ecfdddd590023f4a695eb0f8cf9c09"),
];

/// openssl 3.0 s_client -servername origin.lab -alpn h2,http/1.1 against s_server -tls1_3 on loopback (captured with tcpdump, frames 4-15): ClientHello, ServerHello (supported_versions 0x0304) + CCS + encrypted records, client CCS + encrypted records.
const TLS13_FULL: &[(Direction, &str)] = &[
    // frame 4: 334 bytes
    (Direction::Orig, concat!(
        "1603010149010001450303ad5c60e4d05b3b728922b344bd35e347d1fa5518b73411fcf678203c5c5f45a020e6b86fee",
        "651f2a5f1ff66dcbd985373b5b68dc3cd92312b1991ec9c12f1abdb5003e130213031301c02cc030009fcca9cca8ccaa",
        "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff010000be",
        "0000000f000d00000a6f726967696e2e6c6162000b000403000102000a00160014001d0017001e001900180100010101",
        "0201030104002300000010000e000c02683208687474702f312e310016000000170000000d002a002804030503060308",
        "0708080809080a080b080408050806040105010601030303010302040205020602002b0009080304030303020301002d",
        "00020101003300260024001d0020ddc69d3aac9658bfd14ec9d29b876d695f1129f98d43d033d3e2831f5878997f",
    )),
    // frame 6: 767 bytes
    (Direction::Resp, concat!(
        "160303007a02000076030303c7548187a824d619b7b7254df964febcd83e420505ecbe704057936271b4cf20e6b86fee",
        "651f2a5f1ff66dcbd985373b5b68dc3cd92312b1991ec9c12f1abdb5130200002e002b0002030400330024001d002074",
        "69581d3a95bb2290114aebd01d6106cb3aa6c8e01e471f5e38702af8c1954d140303000101170303002028fa71965876",
        "436e37d0ab94965200162e957c4f19594e54d1ca8151543b158417030301a1378165f608ab3962b8ae5e708de2c624f4",
        "44356f002f1b863b0932e2bef598401fdc58428638c0cfa1119e0e24f15db9829661c32cca2588053a9bf1bdf0282b96",
        "a68f5f49544fd619e95f5eccea42ee15120ccde34a50893f122ad7275039b1afdab998a5fc852a1295948545b21d7292",
        "b39338f1b1794533ec3399bd4d1d58a60b4912675c895852d56e76a02f435e948301a2ae852058fee8654cd54f816dde",
        "c3b78421d16ec906bf33aca08083551dd767dcf1b67450cfcd09be2789436a8badbb722e21b9c550a5f4d9f6ffc51080",
        "28d7bece77a258b57004b2b6e913dc9fc17bcad775a74e505fd80d72bea93b85901c451305c379141c870ef32f4a84dd",
        "8e17b648ad3e7b1269be550569283f7664539468a50bd5c09a0f5cc0db9726d4e7db8ba02a4d4fc6c6169fb735b60a44",
        "e0ecb352ca744b6bc45d00197fea50a629948b0df86f18db99504ccef4508e96d6e61926e1cfd1a7a031d7d7c08e9c89",
        "90e09b098e8575339438cdeb2c90f70fcc15e0d2f401340ddd9d8f1ad5945764b3aeaf5eb983f6126d1360a63df1bef9",
        "01ecf6dde9896098ec632444de3a47d917030300606a15792acfc0bd269e0c1121dc58559b7f06fc403dd0771c2bd0b1",
        "25843eb96928313a54af3babfb9f6a4cb6f7c3dda2b96241e47364819b8e287f1e6d4ba23fde4ab63b75ee5dc17b7fc7",
        "7723a2cc6be58b7df260a1b52991bd5edf26ad013b1703030045e1a4d8dea7a82cd9584702f1c302fbe02e9935194b42",
        "3d8e4d117385f862bd2f09fb7a0861ad05894aa90fa017ccab7a036dbbc616f6555819569073d56017489207f6808b",
    )),
    // frame 8: 80 bytes
    (Direction::Orig, concat!(
        "1403030001011703030045c909b64599d8864a3ece5c32f2e03340c8c8169aff8c5062d2003e809acaa46a2ecbe68fff",
        "7bc196fedb40b91bdd5a614759877133bb7038920a55c1dbe9824ed78f3a0810",
    )),
    // frame 9: 23 bytes
    (Direction::Orig, "17030300129e7bc63350068c5d7c0ed6a67d4b8376e087"),
    // frame 10: 24 bytes
    (Direction::Orig, "1703030013bdf14b15a3ec24cc712969c3d440f2faf3f468"),
    // frame 12: 255 bytes
    (Direction::Resp, concat!(
        "17030300fac9d2f1a522dc978afa7b3ba24eb79239ae0ee90feae3794d3eb8c46e2d1e3353b2de2e154b8f535a331403",
        "ab116554fc053b7dcf59f6487cb81b297996076877fc04e33405c0dcc7635d6ed31dd2d5c090f29af5350b17f09768e4",
        "38232c1975fdb9802f8ef21fd98155567e184058fefebe7ad2a989f584131a89364e0b987cd7043dbe62709c57aaf478",
        "2903d465f7db270d3d4c84d707070e746705ec8dab39e35c98999683bfd558e4e32482dae533455136ff37b6a10c15c6",
        "28d8bb8e653a676d79c8d35f65e9d4ef851d19c5dfc49e99d8d4228e1e58988261576ef34179488b627c95d691988dc7",
        "617bdac6d5c0e7d892ad11070fd25e",
    )),
    // frame 13: 255 bytes
    (Direction::Resp, concat!(
        "17030300faebe23a377406319abea9b4b761428d285e30ea628d0ee8fba934cd58cec685e089931a60985e0055e05241",
        "fb335bba02323eb6a9d1db6b8d4d09d9cc7abb92075b1c21abe13fd8999ea9f46e2c98e7a0e54d85bfc72c0cc4b723f7",
        "7464116bf9b0ce47218d50a9abe24abfdf2b9180ee69d3edc9d7e203f35608df45d6e87314270d29d13b4e740389bf09",
        "d5c61a945faa5693a4f8b60512b534e524d679efb9ea534698ffe0b396bf8866ff25e0e57a1b1d8c10b029266ccfe513",
        "5118da9a7ebdc41e538bc22b0baac39a7c7f3643040ebc0496856db99c04bfa33da48dfb8117a61d4050fbc9b25cc6cb",
        "8cae6bcb3bc93d25187fa5078065be",
    )),
    // frame 15: 24 bytes
    (Direction::Resp, "17030300133c9ca5c5ce36eee213123e60b686268779433a"),
];

/// as TLS13_FULL but server -groups P-256 and client -groups X25519:P-256 (frames 21-34): ClientHello, HelloRetryRequest + CCS, CCS + second ClientHello, ServerHello + encrypted records, …
const TLS13_HRR: &[(Direction, &str)] = &[
    // frame 21: 318 bytes
    (Direction::Orig, concat!(
        "16030101390100013503030bf0076edd8a1621e3fa9790b663a7e2b1fc09d00e0d911e645daaa171e75ba3201613dfcb",
        "7c0b26bc4c8e861c509da4b6a1f17cc5afeb9fba5e955df6bfde7a58003e130213031301c02cc030009fcca9cca8ccaa",
        "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff010000ae",
        "0000000f000d00000a6f726967696e2e6c6162000b000403000102000a00060004001d0017002300000010000e000c02",
        "683208687474702f312e310016000000170000000d002a0028040305030603080708080809080a080b08040805080604",
        "0105010601030303010302040205020602002b0009080304030303020301002d00020101003300260024001d002087b0",
        "6f0f6d3e23fa0747804398b09837e0d1eb473968004d0c05a52d8d8b7b55",
    )),
    // frame 23: 99 bytes
    (Direction::Resp, concat!(
        "1603030058020000540303cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c201613dfcb",
        "7c0b26bc4c8e861c509da4b6a1f17cc5afeb9fba5e955df6bfde7a58130200000c002b00020304003300020017140303",
        "000101",
    )),
    // frame 25: 357 bytes
    (Direction::Orig, concat!(
        "140303000101160303015a0100015603030bf0076edd8a1621e3fa9790b663a7e2b1fc09d00e0d911e645daaa171e75b",
        "a3201613dfcb7c0b26bc4c8e861c509da4b6a1f17cc5afeb9fba5e955df6bfde7a58003e130213031301c02cc030009f",
        "cca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f",
        "00ff010000cf0000000f000d00000a6f726967696e2e6c6162000b000403000102000a00060004001d00170023000000",
        "10000e000c02683208687474702f312e310016000000170000000d002a0028040305030603080708080809080a080b08",
        "0408050806040105010601030303010302040205020602002b0009080304030303020301002d00020101003300470045",
        "001700410490032b9f7a9ee5e6fb2ba9faee18ae3b367ee81c3f90e2d9645b0893f920debb936897fe85ac53c75c6714",
        "022b5362275001146ae95a0370d320264e31bb70fc",
    )),
    // frame 26: 795 bytes
    (Direction::Resp, concat!(
        "160303009b0200009703034f770673cb00252c21649f4f5df37adf38d5f1dca13d4818de7af3b16a03a866201613dfcb",
        "7c0b26bc4c8e861c509da4b6a1f17cc5afeb9fba5e955df6bfde7a58130200004f002b00020304003300450017004104",
        "2696aa9e3f72fb861ce230764fb87955658c68ad4e68b24b6597b3e3719a650cc9be0ac100ebe8c0081457dfeefad0fe",
        "b2d339073bff3687c7c6dbe09c62de6d1703030020e0265fa0e34c3898a841333b0b414874550759f7e3212425b0fb34",
        "08a1b29f8b17030301a1bdda58bd8b1af25ea28a14f6386fe649541f2a912e3bc18c3d2919096bfd56658b71a377c0c3",
        "b680bc27cc7724d6a77a7adbf80b7b02cf8ce81b70234ba8ee2d0dcde4460926fad9494cad50507fc89db4649c75f09c",
        "97ef89cbd5c0b8ac7db702da370f4406c711818dd8ee6d295be94affcd48216227712f62db1a16d7743a73086f806e6c",
        "908cf18abc236f8f9c312a5e4c1aa6c9e26967d034e30637fe495306ea139ee7d713d88c236b482b0ede27818b06071e",
        "d5759dbafdfa7c0bf20dd0c379e97d42559039647e01c1df907fff77876658c3a01d14bac9c07d419050da4fc9ff6af1",
        "b40b0fd6ba86246c04251822f3268af8bc395d868eaf925e80e0e5db7822a98c911dee29b3f4dac0fd6f26910eac85f6",
        "e5f1aa6471a91ada5d9a8ae925c7431204e1879e54c753523b955e4e3aaa7e4fb8a138604f8fc4da17bb5a21adb9950b",
        "fb033383616ef673eeb4843c9b51dc70e58f19cc37856657849f7e9fa80934bcd5d914615e49ad347f36e4b58bcb27a5",
        "2f28c4a403086e58d12481a2232a1b3e58455b18d4f678b828e2f0a272344cd454921f9c6e1627bbd7a3f51703030061",
        "c1aa721133022f438650448d4ced3c3f4b5077057a6468bbe4f36137e664457c693221ea6ea3fcc55a3747705a55b740",
        "541f67265486d6a33183671c76ac2f310598e0625b9de0d7a4ffdeb05907e555749b29377030101cffe1a78ed45f26ec",
        "941703030045f0b9df4621de48164385aedcca46c719a8429b4c465b6ed7facb656345fcac713ca0342337ee43582f47",
        "fe5a32c8f0771693b0806a7528a03b6a65f7fe744a8c6b9103b0ea",
    )),
    // frame 27: 74 bytes
    (Direction::Orig, concat!(
        "1703030045170ce8c2e37a5f78e6476319fb3de4b07c002df7f255f29cb6cadd18d566e9b0ed81f43d729cd4de4dd7dd",
        "af7b3f842aaaaee615a9c16518a3ca6353f6c192bb5c93993120",
    )),
    // frame 28: 23 bytes
    (Direction::Orig, "1703030012228a4fc1a4d8f2012036981aca95b8010c39"),
    // frame 29: 24 bytes
    (Direction::Orig, "17030300132147a0e91303b6f79fc69a70e6002896d3ff9c"),
    // frame 31: 255 bytes
    (Direction::Resp, concat!(
        "17030300fa5ff0bb6e55c02782b64d90102827b8df2b0845eb1bfc645a8ef68a5b577ec6a84609e8e39805887baee2cb",
        "60e5f038fa82c7732ca728f93878b4aea3afd9e046d31603851e14d98a88241cc9ed961cedf7d684af9fcb04c73132ee",
        "33b8fe81ba9dbd5b360cfb2e7f9b9dccc8003acfbb8fc224178572ee764964e9556f2f8bda21f5e4034f838cef416382",
        "45d13ddc064e3fc1cb137ddf11a357cf97ce208cb75894646f948e15a8894b41c188dac27d7fa99dc0878d186ace1d22",
        "3cba2a4522238fe43f7f069dce862d3b1b533608a45b89d7662ece3374399427040c6492c213681b7960b5169c5623a9",
        "fe54492c119c6fef4fbd6d58c4465c",
    )),
    // frame 32: 255 bytes
    (Direction::Resp, concat!(
        "17030300fa09d0250145f6b1492354a33ee4dabdccbd7eb2ecc732fc770eb51a3da2462cc85ea31de8303ec2cb063592",
        "3efc338827c91bda1e16b9d7f287e40c11b22c56127d10e8695ae2b965f448b57d5ab91775daa345766ffd0d7e4dcd9c",
        "4d13b2b9cb5514a29d802be412c10f9298e294e0c9348d9a349b0f33d6958523fd35d504ae34fba93a71c7cf50d513d4",
        "a08bcb543c44ee565cf87627d23c2b6e4cd673f34874df487476bb6227cf7032676c1e72f2956d083ea2a88198c7d559",
        "8ed0276c2c5be68da756f826688c482c6ab917b18fc03a446de0739188bee21e06f3fd7170ee69b00c6f38f396b2cd28",
        "4076cfadb78fa92fdb0f12587e1a27",
    )),
    // frame 34: 24 bytes
    (Direction::Resp, "17030300135cae1b2400287e0dd9b533492b3ccb38686c47"),
];

// ---------------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------------

/// xorshift64: deterministic randomness for property and fuzz tests.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// True with probability `num / den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn fr(n: u64) -> FrameRef {
    FrameRef {
        file: 0,
        number: n,
        ts: Timestamp(1_700_000_000_000_000_000 + n as i64 * 1_000_000),
    }
}

fn frame_no(e: &AppEvent) -> u64 {
    match e {
        AppEvent::HttpRequest { frame }
        | AppEvent::HttpResponse { frame, .. }
        | AppEvent::TlsHandshake { frame, .. }
        | AppEvent::TlsAlert { frame, .. } => frame.number,
    }
}

/// The event without its frame (what must not depend on segmentation).
fn strip(e: &AppEvent) -> AppEvent {
    let mut e = *e;
    match &mut e {
        AppEvent::HttpRequest { frame }
        | AppEvent::HttpResponse { frame, .. }
        | AppEvent::TlsHandshake { frame, .. }
        | AppEvent::TlsAlert { frame, .. } => *frame = FrameRef::default(),
    }
    e
}

const fn hs(msg: u8) -> AppEvent {
    AppEvent::TlsHandshake {
        frame: FrameRef {
            file: 0,
            number: 0,
            ts: Timestamp(0),
        },
        msg,
    }
}
const fn req_ev() -> AppEvent {
    AppEvent::HttpRequest {
        frame: FrameRef {
            file: 0,
            number: 0,
            ts: Timestamp(0),
        },
    }
}
const fn resp_ev(status: u16) -> AppEvent {
    AppEvent::HttpResponse {
        frame: FrameRef {
            file: 0,
            number: 0,
            ts: Timestamp(0),
        },
        status,
    }
}
const fn alert_ev(level: u8, description: u8, encrypted: bool) -> AppEvent {
    AppEvent::TlsAlert {
        frame: FrameRef {
            file: 0,
            number: 0,
            ts: Timestamp(0),
        },
        level,
        description,
        encrypted,
    }
}

/// Feeds stream events one call at a time, one frame number per call (1, 2, …).
struct Feeder {
    flow: AppFlow,
    frame: u64,
    events: Vec<AppEvent>,
}

impl Feeder {
    fn new() -> Feeder {
        Feeder {
            flow: AppFlow::new(1),
            frame: 0,
            events: Vec::new(),
        }
    }
    fn ev(&mut self, dir: Direction, ev: StreamEvent<'_>) -> u64 {
        self.frame += 1;
        let events = &mut self.events;
        self.flow
            .event(dir, fr(self.frame), ev, &mut |e: &AppEvent| events.push(*e));
        self.frame
    }
    /// Data in one frame; returns its frame number.
    fn data(&mut self, dir: Direction, b: &[u8]) -> u64 {
        self.ev(dir, StreamEvent::Data(b))
    }
    /// Data cut into `piece`-byte frames.
    fn pieces(&mut self, dir: Direction, b: &[u8], piece: usize) -> u64 {
        for c in b.chunks(piece) {
            self.data(dir, c);
        }
        self.frame
    }
    fn gap(&mut self, dir: Direction, n: u32) {
        self.ev(dir, StreamEvent::Gap(n));
    }
    fn finish(mut self) -> (AppSummary, Vec<AppEvent>) {
        self.ev(Orig, StreamEvent::End { rst: false });
        self.ev(Resp, StreamEvent::End { rst: false });
        (self.flow.finish(), self.events)
    }
}

/// Feeds captured frames, one call per frame (frame numbers 1, 2, … in constant order).
#[track_caller]
fn run_frames(frames: &[(Direction, &str)]) -> (AppSummary, Vec<AppEvent>) {
    let mut f = Feeder::new();
    for (dir, hex) in frames {
        f.data(*dir, &unhex(hex));
    }
    f.finish()
}

fn tls(s: &AppSummary) -> &tls::TlsSummary {
    s.tls.as_ref().expect("TLS summary")
}
fn http(s: &AppSummary) -> &http::HttpSummary {
    s.http.as_ref().expect("HTTP summary")
}

/// A two-direction conversation: turns in capture order, and the events it must produce, each
/// with the stream offset (over all turns) of the byte that completes it.
#[derive(Clone, Default)]
struct Conv {
    turns: Vec<(Direction, Vec<u8>)>,
    expect: Vec<(AppEvent, usize)>,
}

impl Conv {
    fn len(&self) -> usize {
        self.turns.iter().map(|t| t.1.len()).sum()
    }
    /// Appends bytes (to the last turn when it has the same direction).
    fn raw(&mut self, dir: Direction, b: &[u8]) -> &mut Conv {
        if b.is_empty() {
            return self;
        }
        match self.turns.last_mut() {
            Some((d, v)) if *d == dir => v.extend_from_slice(b),
            _ => self.turns.push((dir, b.to_vec())),
        }
        self
    }
    fn req(&mut self, head: &str, body: &[u8]) -> &mut Conv {
        self.raw(Orig, head.as_bytes());
        self.expect.push((req_ev(), self.len() - 1));
        self.raw(Orig, body)
    }
    fn resp(&mut self, status: u16, head: &str, body: &[u8]) -> &mut Conv {
        self.raw(Resp, head.as_bytes());
        self.expect.push((resp_ev(status), self.len() - 1));
        self.raw(Resp, body)
    }
    /// Appends captured TLS frames; expected events from an independent record walker
    /// (`tls13`: encryption starts after the (non-HRR) ServerHello, not at ChangeCipherSpec).
    fn tls(&mut self, frames: &[(Direction, &str)], tls13: bool) -> &mut Conv {
        let mut segs = Vec::new();
        for (dir, hex) in frames {
            let b = unhex(hex);
            segs.push((*dir, self.len(), b.clone()));
            self.raw(*dir, &b);
        }
        self.expect.extend(tls_walk(&segs, tls13));
        self.expect.sort_by_key(|e| e.1);
        self
    }
    fn from_frames(frames: &[(Direction, &str)], tls13: bool) -> Conv {
        let mut c = Conv::default();
        c.tls(frames, tls13);
        c
    }
}

/// Independent TLS record / handshake walker giving the expected events and their completing
/// offsets. `segs`: (direction, offset of the first byte, bytes).
fn tls_walk(segs: &[(Direction, usize, Vec<u8>)], tls13: bool) -> Vec<(AppEvent, usize)> {
    // Each direction's stream with the global offset of every byte.
    let mut stream: [Vec<(u8, usize)>; 2] = [Vec::new(), Vec::new()];
    for (dir, at, b) in segs {
        stream[dir.idx()].extend(b.iter().enumerate().map(|(i, &x)| (x, at + i)));
    }
    // Plaintext handshake messages of a direction: (type, random-if-hello, offset of last byte).
    let messages = |s: &[(u8, usize)], stop_at: Option<usize>| {
        let mut hs: Vec<(u8, usize)> = Vec::new();
        let mut i = 0;
        while i + 5 <= s.len() {
            let (t, len) = (
                s[i].0,
                u16::from_be_bytes([s[i + 3].0, s[i + 4].0]) as usize,
            );
            if stop_at.is_some_and(|x| s[i].1 > x) {
                break;
            }
            if t == 22 {
                hs.extend(&s[i + 5..(i + 5 + len).min(s.len())]);
            }
            if t == 20 && !tls13 {
                break;
            }
            i += 5 + len;
        }
        let mut out = Vec::new();
        let mut j = 0;
        while j + 4 <= hs.len() {
            let len = u32::from_be_bytes([0, hs[j + 1].0, hs[j + 2].0, hs[j + 3].0]) as usize;
            if j + 4 + len > hs.len() {
                break;
            }
            let hrr = hs[j].0 == 2 && hs[j + 6..j + 38].iter().map(|x| x.0).eq(HRR_RANDOM);
            out.push((hs[j].0, hrr, hs[j + 3 + len].1));
            j += 4 + len;
        }
        out
    };
    // TLS 1.3: both directions are encrypted after the first non-HRR ServerHello.
    let sh_end = if tls13 {
        messages(&stream[1], None)
            .into_iter()
            .find(|m| m.0 == 2 && !m.1)
            .map(|m| m.2)
    } else {
        None
    };
    let mut out = Vec::new();
    for s in &stream {
        for (t, _, at) in messages(s, sh_end) {
            if t == 1 || t == 2 {
                out.push((hs(t), at));
            }
        }
        let mut enc_after: Option<usize> = sh_end;
        let mut i = 0;
        while i + 5 <= s.len() {
            let (t, len) = (
                s[i].0,
                u16::from_be_bytes([s[i + 3].0, s[i + 4].0]) as usize,
            );
            let encrypted = enc_after.is_some_and(|x| s[i].1 > x);
            if t == 21 {
                if encrypted || len != 2 {
                    out.push((alert_ev(0, 0, true), s[i + 4].1));
                } else if i + 7 <= s.len() {
                    out.push((alert_ev(s[i + 5].0, s[i + 6].0, false), s[i + 6].1));
                }
            }
            if t == 20 && !tls13 && !encrypted && i + 5 + len <= s.len() {
                enc_after = Some(s[i + 5 + len - 1].1);
            }
            i += 5 + len;
        }
    }
    out.sort_by_key(|e| e.1);
    out
}

/// What feeding a conversation produced.
struct Fed {
    events: Vec<AppEvent>,
    summary: AppSummary,
    /// Frame number that carried each stream offset.
    frame_at: Vec<u64>,
}

/// Feeds `conv` cut at turn boundaries and at the stream offsets `cuts`, one frame per piece.
fn feed(conv: &Conv, cuts: &[usize]) -> Fed {
    let mut flow = AppFlow::new(7);
    let mut events = Vec::new();
    let mut frame_at = Vec::with_capacity(conv.len());
    let (mut frame, mut base, mut ci) = (0u64, 0usize, 0usize);
    for (dir, bytes) in &conv.turns {
        let end = base + bytes.len();
        let mut start = base;
        while start < end {
            while ci < cuts.len() && cuts[ci] <= start {
                ci += 1;
            }
            let stop = if ci < cuts.len() && cuts[ci] < end {
                cuts[ci]
            } else {
                end
            };
            frame += 1;
            flow.event(
                *dir,
                fr(frame),
                StreamEvent::Data(&bytes[start - base..stop - base]),
                &mut |e: &AppEvent| events.push(*e),
            );
            frame_at.extend(std::iter::repeat_n(frame, stop - start));
            start = stop;
        }
        base = end;
    }
    for dir in [Orig, Resp] {
        flow.event(
            dir,
            fr(frame + 1),
            StreamEvent::End { rst: false },
            &mut |e: &AppEvent| events.push(*e),
        );
    }
    Fed {
        events,
        summary: flow.finish(),
        frame_at,
    }
}

/// `v` with every frame number `n` replaced by `f(n)`.
fn remap_frames(v: &Value, f: &dyn Fn(u64) -> u64) -> Value {
    match v {
        Value::Object(m) if m.len() == 2 && m.contains_key("file") && m.contains_key("number") => {
            let mut m = m.clone();
            let n = m["number"].as_u64().expect("frame number");
            m.insert("number".into(), Value::from(f(n)));
            Value::Object(m)
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), remap_frames(x, f)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| remap_frames(x, f)).collect()),
        x => x.clone(),
    }
}

fn json(s: &AppSummary) -> Value {
    serde_json::to_value(s).expect("summary serializes")
}

/// Random cut points (sorted, distinct, inside the stream).
fn random_cuts(rng: &mut Rng, total: usize) -> Vec<usize> {
    let n = 1 + rng.below(total.min(48));
    let mut cuts: Vec<usize> = (0..n).map(|_| 1 + rng.below(total - 1)).collect();
    // Sometimes a run of tiny pieces (headers split byte by byte).
    if rng.chance(1, 3) {
        let at = 1 + rng.below(total - 1);
        cuts.extend((at..total.min(at + 12)).step_by(1 + rng.below(3)));
    }
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// The segmentation-invariance property: one byte per segment is the reference (its frame numbers
/// are stream offsets + 1); every other segmentation must give the same events and summary, with
/// each frame being the piece that carried the reference's completing byte.
#[track_caller]
fn check_invariance(name: &str, conv: &Conv, check_expect: bool, seed: u64, randoms: usize) {
    let total = conv.len();
    let bytewise = feed(conv, &(1..total).collect::<Vec<_>>());
    let kinds: Vec<AppEvent> = bytewise.events.iter().map(strip).collect();
    let offsets: Vec<usize> = bytewise
        .events
        .iter()
        .map(|e| frame_no(e) as usize - 1)
        .collect();
    if check_expect {
        let got: Vec<(AppEvent, usize)> = kinds.iter().copied().zip(offsets.clone()).collect();
        assert_eq!(
            got, conv.expect,
            "{name}: events of the byte-per-segment feed"
        );
    }
    let reference = json(&bytewise.summary);
    let check = |label: &dyn std::fmt::Display, cuts: &[usize]| {
        let got = feed(conv, cuts);
        let got_kinds: Vec<AppEvent> = got.events.iter().map(strip).collect();
        assert_eq!(got_kinds, kinds, "{name}, {label}: event kinds");
        for (i, e) in got.events.iter().enumerate() {
            assert_eq!(
                frame_no(e),
                got.frame_at[offsets[i]],
                "{name}, {label}: frame of event {i} {e:?} (completing byte at offset {})",
                offsets[i]
            );
        }
        let want = remap_frames(&reference, &|n| got.frame_at[n as usize - 1]);
        assert_eq!(json(&got.summary), want, "{name}, {label}: summary");
    };
    check(&"one piece per turn", &[]);
    for k in 1..total {
        check(&format_args!("split at {k}"), &[k]);
    }
    let mut rng = Rng::new(seed);
    for i in 0..randoms {
        let cuts = random_cuts(&mut rng, total);
        check(&format_args!("random split #{i} {cuts:?}"), &cuts);
    }
}

/// Chunked encoding of `chunks` (with an extension on the first) and trailer lines.
fn chunked(chunks: &[&[u8]], trailers: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        if i == 0 {
            v.extend_from_slice(format!("{:x};name=\"v;1\"\r\n", c.len()).as_bytes());
        } else {
            v.extend_from_slice(format!("{:X}\r\n", c.len()).as_bytes());
        }
        v.extend_from_slice(c);
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(b"0\r\n");
    v.extend_from_slice(trailers.as_bytes());
    v.extend_from_slice(b"\r\n");
    v
}

/// An nginx-like HTML error page of about `n` bytes (ASCII).
fn html_page(status: &str, n: usize) -> Vec<u8> {
    let mut s = format!(
        "<html>\r\n<head><title>{status}</title></head>\r\n<body>\r\n<center><h1>{status}</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n"
    );
    let mut i = 0;
    while s.len() + 16 < n {
        s.push_str(&format!("<!-- pad {i:03} -->\r\n"));
        i += 1;
    }
    s.push_str("</body>\r\n</html>\r\n");
    s.into_bytes()
}

fn response_with_body(status: u16, reason: &str, extra: &str, body: &[u8]) -> (String, Vec<u8>) {
    (
        format!(
            "HTTP/1.1 {status} {reason}\r\nServer: nginx/1.24.0\r\n{extra}Content-Length: {}\r\n\r\n",
            body.len()
        ),
        body.to_vec(),
    )
}

// ---------------------------------------------------------------------------------------------
// Conversations.
// ---------------------------------------------------------------------------------------------

/// Keep-alive: chunked response with extensions and trailers, POST with 100-continue, HEAD,
/// 204, 304, 502 with an HTML body, and a last exchange.
fn conv_keepalive() -> Conv {
    let mut c = Conv::default();
    let body = chunked(
        &[b"hello", b"abcdefghijklmnopqrstuvwxyz"],
        "X-Checksum: abc\r\nX-Other: 1\r\n",
    );
    let (h502, b502) = response_with_body(
        502,
        "Bad Gateway",
        "Content-Type: text/html\r\n",
        &html_page("502 Bad Gateway", 300),
    );
    c.req(
        "GET /index.html HTTP/1.1\r\nHost: shop.lab\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
        b"",
    )
    .resp(
        200,
        "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        &body,
    )
    .req(
        "POST /submit HTTP/1.1\r\nHost: shop.lab\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n",
        b"",
    )
    .resp(100, "HTTP/1.1 100 Continue\r\n\r\n", b"")
    .raw(Orig, b"hello=world")
    .resp(
        200,
        "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nContent-Length: 7\r\n\r\n",
        b"saved\r\n",
    )
    .req("HEAD /big.iso HTTP/1.1\r\nHost: shop.lab\r\n\r\n", b"")
    .resp(
        200,
        "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nContent-Length: 4700000000\r\n\r\n",
        b"",
    )
    .req("DELETE /item/7 HTTP/1.1\r\nHost: shop.lab\r\n\r\n", b"")
    .resp(204, "HTTP/1.1 204 No Content\r\nServer: nginx/1.24.0\r\n\r\n", b"")
    .req(
        "GET /cached HTTP/1.1\r\nHost: shop.lab\r\nIf-None-Match: \"abc\"\r\n\r\n",
        b"",
    )
    .resp(
        304,
        "HTTP/1.1 304 Not Modified\r\nETag: \"abc\"\r\nContent-Length: 99\r\n\r\n",
        b"",
    )
    .req(
        "GET /api/orders HTTP/1.1\r\nHost: api.lab\r\nX-Forwarded-For: 10.0.0.7\r\n\r\n",
        b"",
    )
    .resp(502, &h502, &b502)
    .req("GET /last HTTP/1.1\r\nHost: shop.lab\r\n\r\n", b"")
    .resp(200, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", b"ok");
    c
}

/// Three pipelined requests (one with a chunked body), then three responses (one a chunked 503).
fn conv_pipelined() -> Conv {
    let mut c = Conv::default();
    let page = html_page("503 Service Unavailable", 120);
    let body503 = chunked(&[&page[..50], &page[50..]], "");
    c.req("GET /one HTTP/1.1\r\nHost: a.lab\r\n\r\n", b"")
        .req(
            "PUT /two HTTP/1.1\r\nHost: a.lab\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            &chunked(&[b"abcd", b"ef"], "Expires: never\r\n"),
        )
        .req("GET /three HTTP/1.1\r\nHost: b.lab\r\n\r\n", b"")
        .resp(
            200,
            "HTTP/1.1 200 OK\r\nServer: haproxy\r\nContent-Length: 3\r\n\r\n",
            b"one",
        )
        .resp(
            503,
            "HTTP/1.1 503 Service Unavailable\r\nServer: haproxy\r\nTransfer-Encoding: chunked\r\n\r\n",
            &body503,
        )
        .resp(200, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", b"three");
    c
}

/// Forward-proxy CONNECT answered 200, then a TLS 1.3 hello exchange inside the tunnel.
fn conv_connect() -> Conv {
    let mut c = Conv::default();
    c.req(
        "CONNECT origin.lab:443 HTTP/1.1\r\nHost: origin.lab:443\r\nUser-Agent: curl/8.5.0\r\nProxy-Connection: Keep-Alive\r\n\r\n",
        b"",
    )
    .resp(200, "HTTP/1.1 200 Connection established\r\n\r\n", b"")
    .tls(TLS13_FULL, true);
    c
}

/// HTTP/1.0 502 whose body runs until the connection closes.
fn conv_until_close() -> Conv {
    let mut c = Conv::default();
    c.req("GET /status HTTP/1.0\r\nHost: backend.lab\r\n\r\n", b"")
        .resp(
            502,
            "HTTP/1.0 502 Bad Gateway\r\nServer: haproxy\r\nContent-Type: text/html\r\n\r\n",
            &html_page("502 Bad Gateway", 400),
        );
    c
}

// ---------------------------------------------------------------------------------------------
// 1. Segmentation invariance.
// ---------------------------------------------------------------------------------------------

#[test]
fn segmentation_invariance_tls12_plaintext_alert() {
    let c = Conv::from_frames(TLS12_PLAIN_ALERT, false);
    assert_eq!(c.expect.len(), 2);
    check_invariance("tls12 plaintext alert", &c, true, 1, 400);
}

#[test]
fn segmentation_invariance_tls13_client_hello_alpn_alert() {
    let c = Conv::from_frames(TLS13_CH_ALPN_ALERT, true);
    check_invariance("tls13 ch + alpn alert", &c, true, 2, 400);
}

#[test]
fn segmentation_invariance_tls12_full_handshake_encrypted_alert() {
    let c = Conv::from_frames(TLS12_FULL, false);
    assert_eq!(
        c.expect.len(),
        3,
        "ClientHello, ServerHello, encrypted alert"
    );
    check_invariance("tls12 full", &c, true, 3, 400);
}

#[test]
fn segmentation_invariance_tls13_hello_exchange() {
    let c = Conv::from_frames(TLS13_FULL, true);
    assert_eq!(c.expect.len(), 2, "ClientHello, ServerHello");
    check_invariance("tls13", &c, true, 4, 400);
}

#[test]
fn segmentation_invariance_tls13_hello_retry() {
    // Expected events are not checked here (see `tls13_hello_retry_then_real_server_hello`):
    // only that whatever the parser concludes does not depend on segmentation.
    let c = Conv::from_frames(TLS13_HRR, true);
    check_invariance("tls13 hrr", &c, false, 5, 300);
}

#[test]
fn segmentation_invariance_http_keepalive() {
    let c = conv_keepalive();
    assert_eq!(c.expect.len(), 15);
    check_invariance("http keep-alive", &c, true, 6, 400);
}

#[test]
fn segmentation_invariance_http_pipelined() {
    let c = conv_pipelined();
    check_invariance("http pipelined", &c, true, 7, 400);
}

#[test]
fn segmentation_invariance_http_connect_tls() {
    let c = conv_connect();
    assert_eq!(c.expect.len(), 4, "CONNECT, 200, ClientHello, ServerHello");
    check_invariance("http connect", &c, true, 8, 400);
}

#[test]
fn segmentation_invariance_http_body_until_close() {
    let c = conv_until_close();
    check_invariance("http until close", &c, true, 9, 300);
}

#[test]

fn segmentation_invariance_http_unanswered_after_partial_response() {
    // Two pipelined requests; the first is answered (with a body), the server dies half-way
    // through the second response's header. `bytes_after_unanswered` must not depend on how
    // those bytes were segmented.
    let mut c = Conv::default();
    c.req("GET /a HTTP/1.1\r\nHost: a.lab\r\n\r\n", b"")
        .req("GET /b HTTP/1.1\r\nHost: a.lab\r\n\r\n", b"")
        .resp(
            200,
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
            b"0123456789",
        )
        .raw(Resp, b"HTTP/1.1 200 OK\r\nContent-Le");
    let whole = feed(&c, &[]);
    // Since the last complete response header: the 10 body bytes and the 27 header bytes.
    assert_eq!(http(&whole.summary).bytes_after_unanswered, 37);
    check_invariance("http unanswered after partial", &c, true, 10, 200);
}

// ---------------------------------------------------------------------------------------------
// 2. TLS.
// ---------------------------------------------------------------------------------------------

/// SHA-256("HelloRetryRequest") (RFC 8446 §4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

/// Concatenated bodies of the records in `b` (which must be whole records of type `typ`).
fn record_payload(b: &[u8], typ: u8) -> Vec<u8> {
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        assert_eq!(b[i], typ, "record type at {i}");
        let len = u16::from_be_bytes([b[i + 3], b[i + 4]]) as usize;
        out.extend_from_slice(&b[i + 5..i + 5 + len]);
        i += 5 + len;
    }
    assert_eq!(i, b.len(), "whole records");
    out
}

/// `payload` cut into TLS 1.2 records of type `typ` of at most `size` bytes.
fn records(typ: u8, payload: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in payload.chunks(size) {
        out.extend_from_slice(&[typ, 3, 3]);
        out.extend_from_slice(&(c.len() as u16).to_be_bytes());
        out.extend_from_slice(c);
    }
    out
}

/// The real TLS 1.3 ClientHello message (from `TLS13_FULL`) and the offset of its extensions'
/// length field.
fn client_hello_message() -> (Vec<u8>, usize) {
    let m = record_payload(&unhex(TLS13_FULL[0].1), 22);
    assert_eq!(m[0], 1);
    let mut i = 4 + 2 + 32;
    i += 1 + m[i] as usize;
    i += 2 + u16::from_be_bytes([m[i], m[i + 1]]) as usize;
    i += 1 + m[i] as usize;
    let ext_len = u16::from_be_bytes([m[i], m[i + 1]]) as usize;
    assert_eq!(i + 2 + ext_len, m.len(), "extensions end the message");
    (m, i)
}

/// That ClientHello with a padding extension of `pad` bytes appended (lengths fixed up).
fn padded_client_hello(pad: usize) -> Vec<u8> {
    let (mut m, i) = client_hello_message();
    let ext_len = u16::from_be_bytes([m[i], m[i + 1]]) as usize;
    let new_ext = ext_len + 4 + pad;
    assert!(new_ext <= 0xFFFF);
    m[i..i + 2].copy_from_slice(&(new_ext as u16).to_be_bytes());
    m.extend_from_slice(&[0x00, 0x15]);
    m.extend_from_slice(&(pad as u16).to_be_bytes());
    m.resize(m.len() + pad, 0);
    let body = (m.len() - 4) as u32;
    m[1..4].copy_from_slice(&body.to_be_bytes()[1..]);
    m
}

/// The largest padding that still fits the extensions' 16-bit length.
fn max_padding() -> usize {
    let (m, i) = client_hello_message();
    0xFFFF - 4 - u16::from_be_bytes([m[i], m[i + 1]]) as usize
}

#[test]
fn tls_client_hello_fields_extracted() {
    let (s, ev) = run_frames(&TLS13_FULL[..1]);
    assert_eq!(s.proto, Proto::Tls);
    let ch = tls(&s).client_hello.as_ref().expect("ClientHello");
    assert_eq!(ch.frame.number, 1);
    assert_eq!(ch.sni.as_deref(), Some("origin.lab"));
    assert_eq!(ch.alpn, ["h2", "http/1.1"]);
    assert_eq!(ch.versions, [0x0304, 0x0303, 0x0302, 0x0301]);
    assert_eq!(
        ev,
        [AppEvent::TlsHandshake {
            frame: fr(1),
            msg: 1
        }]
    );
    assert!(tls(&s).server_hello.is_none() && tls(&s).anomaly.is_none());

    let (s, _) = run_frames(&TLS12_FULL[..1]);
    let ch = tls(&s).client_hello.as_ref().expect("ClientHello");
    assert_eq!(ch.sni.as_deref(), Some("proxy.lab"));
    assert_eq!(ch.alpn, ["h2", "http/1.1"]);
    assert_eq!(ch.versions, [0x0304, 0x0303, 0x0302, 0x0301]);

    // TLS 1.2-only client: no supported_versions, the legacy version stands; no ALPN.
    let (s, _) = run_frames(&TLS12_PLAIN_ALERT[..1]);
    let ch = tls(&s).client_hello.as_ref().expect("ClientHello");
    assert_eq!(ch.sni.as_deref(), Some("backend.lab"));
    assert!(ch.alpn.is_empty());
    assert_eq!(ch.versions, [0x0303]);
}

#[test]
fn tls12_server_hello_alpn_ccs_encryption_and_encrypted_alert() {
    // Frames 1..8 = capture frames 46, 48, 50, 51, 52, 53, 54, 75.
    let (s, ev) = run_frames(TLS12_FULL);
    let t = tls(&s);
    let sh = t.server_hello.as_ref().expect("ServerHello");
    assert_eq!(
        (sh.frame.number, sh.version, sh.cipher),
        (2, 0x0303, 0xc02c)
    );
    assert_eq!(sh.alpn.as_deref(), Some("http/1.1"));
    assert!(!sh.hello_retry && t.hello_retry.is_none() && !t.negotiated_tls13());
    // ChangeCipherSpec: client's in frame 50, server's in frame 51.
    assert_eq!(t.encrypted_from, [Some(fr(3)), Some(fr(4))]);
    assert_eq!(t.first_encrypted, [Some(fr(3)), Some(fr(4))]);
    // Client: Finished, 2 application data records; server: Finished, 1 application data.
    assert_eq!(t.encrypted_records, [3, 2]);
    assert_eq!(t.alerts.len(), 1);
    let a = t.alerts[0];
    assert_eq!(
        (a.frame.number, a.from, a.level, a.description),
        (8, Orig, 0, 0)
    );
    assert!(a.encrypted);
    assert_eq!(t.anomaly, None);
    assert_eq!(
        ev,
        [
            AppEvent::TlsHandshake {
                frame: fr(1),
                msg: 1
            },
            AppEvent::TlsHandshake {
                frame: fr(2),
                msg: 2
            },
            AppEvent::TlsAlert {
                frame: fr(8),
                level: 0,
                description: 0,
                encrypted: true
            },
        ]
    );
}

#[test]
fn tls13_server_hello_version_from_supported_versions_and_encryption_after_it() {
    // Frames 1..8 = capture frames 4, 6, 8, 9, 10, 12, 13, 15.
    let (s, ev) = run_frames(TLS13_FULL);
    let t = tls(&s);
    let sh = t.server_hello.as_ref().expect("ServerHello");
    assert_eq!(
        (sh.frame.number, sh.version, sh.cipher),
        (2, 0x0304, 0x1302)
    );
    assert_eq!(
        sh.alpn, None,
        "ALPN is in the encrypted EncryptedExtensions in TLS 1.3"
    );
    assert!(!sh.hello_retry && t.negotiated_tls13());
    // Both directions encrypted right after the ServerHello; the client's compatibility CCS
    // (frame 3) changes nothing.
    assert_eq!(t.encrypted_from, [Some(fr(2)), Some(fr(2))]);
    assert_eq!(t.first_encrypted, [Some(fr(3)), Some(fr(2))]);
    // Server: 4 records after its CCS in frame 2, then 3 single-record frames.
    assert_eq!(t.encrypted_records, [3, 7]);
    assert!(t.alerts.is_empty());
    assert_eq!(t.anomaly, None);
    assert_eq!(
        ev,
        [
            AppEvent::TlsHandshake {
                frame: fr(1),
                msg: 1
            },
            AppEvent::TlsHandshake {
                frame: fr(2),
                msg: 2
            },
        ]
    );
}

#[test]
fn tls_handshake_message_split_across_records_and_tiny_records() {
    let msg = record_payload(&unhex(TLS13_FULL[0].1), 22);
    for size in [1, 7, 100, msg.len() - 1] {
        let recs = records(22, &msg, size);
        let mut f = Feeder::new();
        // Also cut the record stream across record headers.
        f.pieces(Orig, &recs, 13);
        let last = f.frame;
        let (s, ev) = f.finish();
        let ch = tls(&s).client_hello.as_ref().expect("ClientHello");
        assert_eq!(ch.sni.as_deref(), Some("origin.lab"), "records of {size}");
        assert_eq!(ch.alpn, ["h2", "http/1.1"]);
        assert_eq!(ch.versions, [0x0304, 0x0303, 0x0302, 0x0301]);
        assert_eq!(ch.frame.number, last, "completed by the last piece");
        assert_eq!(
            ev,
            [AppEvent::TlsHandshake {
                frame: fr(last),
                msg: 1
            }]
        );
        assert_eq!(tls(&s).anomaly, None);
    }
}

#[test]
fn tls_several_handshake_messages_in_one_record() {
    // Capture frame 48: ServerHello, Certificate, ServerKeyExchange, ServerHelloDone in four
    // records; repacked as one record, then as records that cut messages anywhere.
    let flight = record_payload(&unhex(TLS12_FULL[1].1), 22);
    for size in [flight.len(), 50, 3] {
        let mut f = Feeder::new();
        f.data(Orig, &unhex(TLS12_FULL[0].1));
        let frame = f.data(Resp, &records(22, &flight, size));
        let (s, ev) = f.finish();
        let sh = tls(&s).server_hello.as_ref().expect("ServerHello");
        assert_eq!((sh.version, sh.alpn.as_deref()), (0x0303, Some("http/1.1")));
        assert_eq!(
            ev[1],
            AppEvent::TlsHandshake {
                frame: fr(frame),
                msg: 2
            }
        );
        assert_eq!(ev.len(), 2, "only hellos are events");
        assert_eq!(tls(&s).anomaly, None, "records of {size}");
    }
}

#[test]
fn tls_hello_retry_request_detected() {
    let (s, ev) = run_frames(&TLS13_HRR[..2]);
    let t = tls(&s);
    assert_eq!(t.hello_retry, Some(fr(2)));
    let sh = t
        .server_hello
        .as_ref()
        .expect("HRR kept as the ServerHello until a real one");
    assert!(sh.hello_retry);
    assert!(
        !t.negotiated_tls13(),
        "a HelloRetryRequest negotiates nothing yet"
    );
    assert_eq!(
        ev[1],
        AppEvent::TlsHandshake {
            frame: fr(2),
            msg: 2
        }
    );
    // Sanity: the real capture's ServerHello carries the HRR random.
    assert_eq!(unhex(TLS13_HRR[1].1)[11..43], HRR_RANDOM);
}

#[test]

fn tls13_hello_retry_then_real_server_hello() {
    // Frames 1..4 = capture frames 21 (ClientHello), 23 (HRR + CCS), 25 (CCS + ClientHello),
    // 26 (ServerHello + encrypted records).
    let (s, ev) = run_frames(TLS13_HRR);
    let t = tls(&s);
    assert_eq!(t.hello_retry, Some(fr(2)));
    let sh = t.server_hello.as_ref().expect("ServerHello");
    assert!(!sh.hello_retry, "the real ServerHello replaces the HRR");
    assert_eq!((sh.frame.number, sh.version), (4, 0x0304));
    assert!(t.negotiated_tls13());
    assert_eq!(t.encrypted_from, [Some(fr(4)), Some(fr(4))]);
    assert_eq!(
        t.first_encrypted[0],
        Some(fr(5)),
        "the second ClientHello is not encrypted"
    );
    assert_eq!(
        ev,
        [
            AppEvent::TlsHandshake {
                frame: fr(1),
                msg: 1
            },
            AppEvent::TlsHandshake {
                frame: fr(2),
                msg: 2
            },
            AppEvent::TlsHandshake {
                frame: fr(3),
                msg: 1
            },
            AppEvent::TlsHandshake {
                frame: fr(4),
                msg: 2
            },
        ]
    );
}

#[test]
fn tls_plaintext_fatal_alerts() {
    for (frames, desc) in [(TLS12_PLAIN_ALERT, 70u8), (TLS13_CH_ALPN_ALERT, 120)] {
        let (s, ev) = run_frames(frames);
        let t = tls(&s);
        assert_eq!(t.alerts.len(), 1);
        let a = t.alerts[0];
        assert_eq!(
            (a.frame.number, a.from, a.level, a.description),
            (2, Resp, 2, desc)
        );
        assert!(!a.encrypted);
        assert!(t.server_hello.is_none() && t.anomaly.is_none());
        assert_eq!(
            ev[1],
            AppEvent::TlsAlert {
                frame: fr(2),
                level: 2,
                description: desc,
                encrypted: false
            }
        );
    }
    assert_eq!(tls::alert_name(70), "protocol_version");
    assert_eq!(tls::alert_name(120), "no_application_protocol");
}

#[test]
fn tls_alert_records_that_cannot_be_plaintext_are_encrypted() {
    // After CCS even a 2-byte alert is encrypted (can't be, in practice, but the rule holds).
    let mut f = Feeder::new();
    for (d, h) in &TLS12_FULL[..4] {
        f.data(*d, &unhex(h));
    }
    let fa = f.data(Resp, &[21, 3, 3, 0, 2, 0xAB, 0xCD]);
    let (s, _) = f.finish();
    let a = tls(&s).alerts[0];
    assert_eq!(
        (a.frame.number, a.level, a.description, a.encrypted),
        (fa, 0, 0, true)
    );
}

#[test]

fn tls_alert_record_of_unusual_length_reported_once_however_split() {
    // Two plaintext alerts coalesced in one record (warning close_notify + fatal
    // handshake_failure): length 4.
    // Also an encrypted alert seen before the parser knows the direction is encrypted: 26 bytes.
    let mut enc = vec![21u8, 3, 3, 0, 26];
    enc.extend_from_slice(&[0x5A; 26]);
    for rec in [&[21u8, 3, 3, 0, 4, 1, 0, 2, 40][..], &enc] {
        let mut counts = Vec::new();
        for piece in [rec.len(), 1, 6] {
            let mut f = Feeder::new();
            f.data(Orig, &unhex(TLS12_FULL[0].1));
            f.pieces(Resp, rec, piece);
            let (s, ev) = f.finish();
            let t = tls(&s);
            assert!(
                t.alerts[0].encrypted && t.alerts[0].level == 0,
                "taken as encrypted"
            );
            counts.push((ev.len() - 1, t.alerts.len()));
        }
        assert_eq!(
            counts,
            [(1, 1), (1, 1), (1, 1)],
            "(alert events, alerts) per segmentation"
        );
    }
}

#[test]
fn tls_gap_before_handshake_is_an_anomaly_not_a_panic() {
    let ch = unhex(TLS13_FULL[0].1);
    let mut f = Feeder::new();
    f.data(Orig, &ch[..50]);
    f.gap(Orig, 100);
    f.data(Orig, &ch[150..]);
    f.data(Orig, &ch); // whatever follows is not read any more
    f.data(Resp, &unhex(TLS12_FULL[1].1));
    let (s, ev) = f.finish();
    let t = tls(&s);
    assert_eq!(
        t.anomaly,
        Some("gap in the TLS stream before the handshake was read")
    );
    assert!(t.client_hello.is_none());
    assert!(
        t.server_hello.is_some(),
        "the other direction is unaffected"
    );
    assert_eq!(
        ev,
        [AppEvent::TlsHandshake {
            frame: fr(5),
            msg: 2
        }]
    );

    // A gap once encrypted loses nothing we parse: no anomaly.
    let mut f = Feeder::new();
    for (d, h) in TLS12_FULL {
        f.data(*d, &unhex(h));
    }
    f.gap(Resp, 1000);
    f.data(Resp, &[0x17, 0x03]);
    let (s, _) = f.finish();
    assert_eq!(tls(&s).anomaly, None);
    assert!(tls(&s).server_hello.is_some());
}

#[test]
fn tls_non_tls_bytes_after_detection_stop_the_direction() {
    let mut f = Feeder::new();
    f.data(Orig, &unhex(TLS13_FULL[0].1));
    f.data(Orig, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    f.data(Orig, &unhex(TLS13_FULL[0].1));
    f.data(Resp, &unhex(TLS13_FULL[1].1));
    let (s, ev) = f.finish();
    let t = tls(&s);
    assert_eq!(t.anomaly, Some("not a TLS record"));
    assert_eq!(t.client_hello.as_ref().map(|c| c.frame.number), Some(1));
    assert!(t.server_hello.is_some());
    assert_eq!(ev.len(), 2);

    // A record longer than 2^14 + 2048 is not TLS either.
    let mut f = Feeder::new();
    f.data(Resp, &[22, 3, 3, 0x48, 0x01, 2, 0, 0]);
    let (s, _) = f.finish();
    assert_eq!(s.proto, Proto::Tls);
    assert_eq!(tls(&s).anomaly, Some("not a TLS record"));
}

#[test]
fn tls_client_hello_over_the_cap_is_skipped_with_an_anomaly() {
    // Just under the cap: read whole across 4 records.
    let m = padded_client_hello(60_000);
    assert!(m.len() - 4 <= MAX_HANDSHAKE_MSG);
    let mut f = Feeder::new();
    f.pieces(Orig, &records(22, &m, 16384), 1448);
    let (s, _) = f.finish();
    let ch = tls(&s)
        .client_hello
        .as_ref()
        .expect("ClientHello under the cap");
    assert_eq!(ch.sni.as_deref(), Some("origin.lab"));
    assert_eq!(tls(&s).anomaly, None);

    // Over the cap (the largest a ClientHello can be: 2^16 - 1 bytes of extensions).
    let m = padded_client_hello(max_padding());
    assert!(m.len() - 4 > MAX_HANDSHAKE_MSG, "{} bytes", m.len());
    let mut f = Feeder::new();
    let last = f.pieces(Orig, &records(22, &m, 16384), 1448);
    f.data(Resp, &unhex(TLS12_FULL[1].1));
    let (s, ev) = f.finish();
    let t = tls(&s);
    assert_eq!(t.anomaly, Some("TLS hello larger than the buffer cap"));
    assert!(t.client_hello.is_none());
    assert!(
        t.server_hello.is_some(),
        "parsing goes on after the skipped message"
    );
    assert_eq!(
        ev[0],
        AppEvent::TlsHandshake {
            frame: fr(last),
            msg: 1
        }
    );
}

// ---------------------------------------------------------------------------------------------
// 3. HTTP.
// ---------------------------------------------------------------------------------------------

/// The summary's JSON with every frame number set to 0.
fn json_without_frames(s: &AppSummary) -> Value {
    remap_frames(&json(s), &|_| 0)
}

#[test]
fn http_keepalive_pairs_requests_and_responses() {
    let fed = feed(&conv_keepalive(), &[]);
    let s = &fed.summary;
    assert_eq!(s.proto, Proto::Http);
    assert!(s.tls.is_none());
    let h = http(s);
    assert_eq!(
        (h.requests, h.responses),
        (7, 8),
        "the 100 Continue counts as a response"
    );
    assert_eq!(
        h.status_counts,
        [(200, 4), (100, 1), (204, 1), (304, 1), (502, 1)]
    );
    assert_eq!(h.hosts, ["shop.lab", "api.lab"]);
    assert_eq!(h.servers, ["nginx/1.24.0"]);
    assert!(h.unanswered.is_empty() && h.anomaly.is_none() && !h.tunnel);
    assert_eq!(h.errors.len(), 1);
    let e = &h.errors[0];
    let r = e
        .request
        .as_ref()
        .expect("the 502 answered GET /api/orders");
    assert_eq!(
        (r.method.as_str(), r.target.as_str()),
        ("GET", "/api/orders")
    );
    assert_eq!(r.host.as_deref(), Some("api.lab"));
    assert_eq!(
        r.forwarded_for.as_deref(),
        Some("x-forwarded-for: 10.0.0.7")
    );
    assert_eq!(
        (e.response.status, e.response.reason.as_str()),
        (502, "Bad Gateway")
    );
    assert_eq!(e.response.server.as_deref(), Some("nginx/1.24.0"));
    let page = html_page("502 Bad Gateway", 300);
    assert!(page.len() > BODY_SNIPPET);
    assert_eq!(e.response.body_snippet.as_bytes(), &page[..BODY_SNIPPET]);
    // Turns alternate; each header block completes in its own turn's frame.
    let frames: Vec<u64> = fed.events.iter().map(frame_no).collect();
    assert_eq!(frames[..4], [1, 2, 3, 4]);
}

#[test]
fn http_pipelined_requests_answered_in_order() {
    let fed = feed(&conv_pipelined(), &[]);
    let h = http(&fed.summary);
    assert_eq!((h.requests, h.responses), (3, 3));
    assert!(h.unanswered.is_empty() && h.anomaly.is_none());
    assert_eq!(h.servers, ["haproxy"]);
    let e = &h.errors[0];
    let r = e.request.as_ref().expect("request");
    assert_eq!((r.method.as_str(), r.target.as_str()), ("PUT", "/two"));
    assert_eq!(e.response.status, 503);
    // Chunk framing is not part of the snippet.
    let page = html_page("503 Service Unavailable", 120);
    assert!(page.len() <= BODY_SNIPPET);
    assert_eq!(e.response.body_snippet.as_bytes(), &page[..]);
    // All three requests complete in frame 1, all three responses in frame 2.
    let frames: Vec<u64> = fed.events.iter().map(frame_no).collect();
    assert_eq!(frames, [1, 1, 1, 2, 2, 2]);
}

/// Upload and chunked download of `n` bytes, then an error exchange.
fn conv_big_bodies(n: usize) -> Conv {
    let mut c = Conv::default();
    let mut upload = vec![b'u'; n];
    upload[n / 2..].fill(b'\r'); // body bytes that look like line ends change nothing
    let chunk = vec![b'd'; 0x7FF3];
    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut left = n;
    while left > 0 {
        let k = left.min(chunk.len());
        chunks.push(&chunk[..k]);
        left -= k;
    }
    c.req(
        &format!("POST /upload HTTP/1.1\r\nHost: files.lab\r\nContent-Length: {n}\r\n\r\n"),
        &upload,
    )
    .resp(
        200,
        "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        &chunked(&chunks, "X-Sum: 1\r\n"),
    )
    .req("GET /after HTTP/1.1\r\nHost: files.lab\r\n\r\n", b"")
    .resp(
        503,
        "HTTP/1.1 503 Service Unavailable\r\nServer: nginx/1.24.0\r\nContent-Length: 4\r\n\r\n",
        b"busy",
    );
    c
}

#[test]
fn http_ten_megabyte_bodies_are_skipped_not_buffered() {
    let small = feed(&conv_big_bodies(10), &[]);
    let big = conv_big_bodies(10 << 20);
    assert!(big.len() > 20 << 20);
    let cuts: Vec<usize> = (1..big.len() / 65536 + 1).map(|i| i * 65536).collect();
    let fed = feed(&big, &cuts);
    // Had any body byte been taken for a header block, the 16 KiB cap would have stopped parsing.
    assert_eq!(http(&fed.summary).anomaly, None);
    // The HTTP facts are the same whatever the body size (the first-bytes fingerprint differs:
    // the Content-Length values are in the first 64 bytes).
    assert_eq!(
        json_without_frames(&fed.summary)["http"],
        json_without_frames(&small.summary)["http"]
    );
    let kinds: Vec<AppEvent> = fed.events.iter().map(strip).collect();
    assert_eq!(kinds, [req_ev(), resp_ev(200), req_ev(), resp_ev(503)]);
    assert_eq!(
        http(&fed.summary).errors[0]
            .request
            .as_ref()
            .unwrap()
            .target,
        "/after"
    );
}

#[test]
fn http_error_body_snippet_is_capped() {
    let body = html_page("502 Bad Gateway", 5000);
    let (head, body) = response_with_body(502, "Bad Gateway", "", &body);
    for piece in [usize::MAX, 100, 1] {
        let mut f = Feeder::new();
        f.data(Orig, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        f.data(Resp, head.as_bytes());
        f.pieces(Resp, &body, piece.min(body.len()));
        let (s, _) = f.finish();
        let snip = &http(&s).errors[0].response.body_snippet;
        assert_eq!(snip.len(), BODY_SNIPPET, "pieces of {piece}");
        assert_eq!(snip.as_bytes(), &body[..BODY_SNIPPET]);
    }
}

#[test]

fn http_error_body_snippet_does_not_depend_on_segmentation_utf8() {
    let body = "<p>Dienst nicht verfügbar — später erneut versuchen</p>".as_bytes();
    let (head, body) = response_with_body(503, "Service Unavailable", "", body);
    let mut snippets = Vec::new();
    for piece in [body.len(), 1] {
        let mut f = Feeder::new();
        f.data(Orig, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        f.data(Resp, head.as_bytes());
        f.pieces(Resp, &body, piece);
        let (s, _) = f.finish();
        snippets.push(http(&s).errors[0].response.body_snippet.clone());
    }
    assert_eq!(snippets[0], std::str::from_utf8(&body).unwrap());
    assert_eq!(snippets[1], snippets[0]);
}

#[test]

fn http_error_body_snippet_of_binary_body_is_within_the_cap() {
    let body = vec![0xFFu8; 1000];
    let (head, body) = response_with_body(500, "Internal Server Error", "", &body);
    let mut f = Feeder::new();
    f.data(Orig, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    f.data(Resp, head.as_bytes());
    f.data(Resp, &body);
    let (s, _) = f.finish();
    let snip = &http(&s).errors[0].response.body_snippet;
    assert!(
        snip.len() <= BODY_SNIPPET,
        "snippet of {} bytes",
        snip.len()
    );
}

#[test]
fn http_head_response_with_content_length_has_no_body() {
    let mut f = Feeder::new();
    f.data(
        Orig,
        b"HEAD /file HTTP/1.1\r\nHost: a\r\n\r\nGET /missing HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    f.data(
        Resp,
        b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\nHTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n",
    );
    let (s, ev) = f.finish();
    let h = http(&s);
    assert_eq!((h.requests, h.responses), (2, 2));
    assert_eq!(h.errors[0].request.as_ref().unwrap().target, "/missing");
    assert!(h.unanswered.is_empty() && h.anomaly.is_none());
    assert_eq!(
        ev.last(),
        Some(&AppEvent::HttpResponse {
            frame: fr(2),
            status: 500
        })
    );
}

#[test]
fn http_interim_responses_then_final() {
    let mut f = Feeder::new();
    f.data(
        Orig,
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
    );
    f.data(Resp, b"HTTP/1.1 100 Continue\r\n\r\n");
    f.data(Orig, b"abc");
    f.data(
        Resp,
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
    );
    f.data(
        Resp,
        b"HTTP/1.1 504 Gateway Time-out\r\nContent-Length: 0\r\n\r\n",
    );
    let (s, ev) = f.finish();
    let h = http(&s);
    assert_eq!((h.requests, h.responses), (1, 3));
    assert_eq!(h.status_counts, [(100, 1), (103, 1), (504, 1)]);
    let r = h.errors[0]
        .request
        .as_ref()
        .expect("the final response answered the POST");
    assert_eq!(r.target, "/x");
    assert!(h.unanswered.is_empty());
    let statuses: Vec<AppEvent> = ev.iter().map(strip).collect();
    assert_eq!(
        statuses,
        [req_ev(), resp_ev(100), resp_ev(103), resp_ev(504)]
    );
}

#[test]
fn http_101_switching_protocols_stops_parsing() {
    let mut f = Feeder::new();
    f.data(
        Orig,
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    );
    f.data(
        Resp,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello",
    );
    // Frames that happen to look like HTTP are not HTTP any more.
    f.data(Orig, b"\x81\x85abcdGET / HTTP/1.1\r\n\r\n");
    f.data(Resp, b"HTTP/1.1 500 Internal Server Error\r\n\r\n");
    f.gap(Resp, 100);
    let (s, ev) = f.finish();
    let h = http(&s);
    assert_eq!((h.requests, h.responses), (1, 1));
    assert_eq!(h.status_counts, [(101, 1)]);
    assert!(h.unanswered.is_empty() && h.anomaly.is_none() && h.errors.is_empty());
    assert_eq!(ev.len(), 2);
}

#[test]
fn http_connect_tunnel_then_tls_inside() {
    let fed = feed(&conv_connect(), &[]);
    let s = &fed.summary;
    assert_eq!(s.proto, Proto::HttpConnectTls);
    let h = http(s);
    assert!(h.tunnel);
    assert_eq!((h.requests, h.responses), (1, 1));
    assert!(h.unanswered.is_empty() && h.anomaly.is_none());
    let t = tls(s);
    let ch = t
        .client_hello
        .as_ref()
        .expect("ClientHello inside the tunnel");
    assert_eq!(ch.sni.as_deref(), Some("origin.lab"));
    assert_eq!(ch.frame.number, 3);
    assert_eq!(t.server_hello.as_ref().map(|s| s.version), Some(0x0304));
    assert_eq!(t.anomaly, None);

    // A CONNECT refused by the proxy is ordinary HTTP: no tunnel.
    let mut f = Feeder::new();
    f.data(
        Orig,
        b"CONNECT origin.lab:443 HTTP/1.1\r\nHost: origin.lab:443\r\n\r\n",
    );
    f.data(
        Resp,
        b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 5\r\n\r\ndeny!",
    );
    f.data(Orig, b"CONNECT origin.lab:443 HTTP/1.1\r\nHost: origin.lab:443\r\nProxy-Authorization: Basic eDp5\r\n\r\n");
    f.data(Resp, b"HTTP/1.1 200 Connection established\r\n\r\n");
    f.data(Orig, &unhex(TLS13_FULL[0].1));
    let (s, _) = f.finish();
    assert_eq!(s.proto, Proto::HttpConnectTls);
    assert_eq!(http(&s).status_counts, [(407, 1), (200, 1)]);
    assert!(tls(&s).client_hello.is_some());
}

#[test]
fn http_connect_200_and_server_hello_in_one_segment() {
    // A proxy may coalesce its 200 with the first bytes relayed from the origin.
    let mut f = Feeder::new();
    f.data(
        Orig,
        b"CONNECT origin.lab:443 HTTP/1.1\r\nHost: origin.lab:443\r\n\r\n",
    );
    f.data(Orig, &unhex(TLS13_FULL[0].1));
    let mut resp = b"HTTP/1.1 200 Connection established\r\n\r\n".to_vec();
    resp.extend_from_slice(&unhex(TLS13_FULL[1].1));
    let frame = f.data(Resp, &resp);
    let (s, ev) = f.finish();
    assert_eq!(s.proto, Proto::HttpConnectTls);
    assert_eq!(
        tls(&s).server_hello.as_ref().map(|s| s.frame.number),
        Some(frame)
    );
    assert!(ev.contains(&AppEvent::HttpResponse {
        frame: fr(frame),
        status: 200
    }));
    assert!(ev.contains(&AppEvent::TlsHandshake {
        frame: fr(frame),
        msg: 2
    }));
}

#[test]
fn http_gap_inside_a_body_is_skipped_silently() {
    let mut f = Feeder::new();
    f.data(
        Orig,
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n",
    );
    f.data(Orig, &[b'x'; 300]);
    f.gap(Orig, 500);
    f.data(Orig, &[b'x'; 200]);
    f.data(Orig, b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n");
    f.data(Resp, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
    f.gap(Resp, 1000);
    f.data(
        Resp,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n",
    );
    f.data(Resp, &[b'y'; 24]);
    f.gap(Resp, 1000);
    f.data(Resp, b"\r\n0\r\n\r\n");
    let (s, ev) = f.finish();
    let h = http(&s);
    assert_eq!(h.anomaly, None);
    assert_eq!((h.requests, h.responses), (2, 2));
    assert!(h.unanswered.is_empty());
    assert_eq!(ev.len(), 4);
}

#[test]
fn http_gap_in_a_header_block_resynchronises_and_forgets_the_lost_response() {
    let mut f = Feeder::new();
    f.data(
        Orig,
        b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    f.data(Resp, b"HTTP/1.1 200 OK\r\nConte");
    f.gap(Resp, 50);
    f.data(Resp, b"nt-Length: 3\r\n\r\nabc"); // the rest of the lost response: skipped
    let fr503 = f.data(
        Resp,
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
    );
    let (s, ev) = f.finish();
    let h = http(&s);
    assert_eq!(
        h.anomaly,
        Some("gap in the HTTP stream: resynchronised on the next message")
    );
    assert_eq!(h.responses, 1);
    assert_eq!(h.errors[0].request.as_ref().unwrap().target, "/b");
    assert!(
        h.unanswered.is_empty(),
        "/a's response was lost, not missing"
    );
    assert_eq!(
        ev.last(),
        Some(&AppEvent::HttpResponse {
            frame: fr(fr503),
            status: 503
        })
    );

    // The next message can also start after a line end inside a segment.
    let mut f = Feeder::new();
    f.data(
        Orig,
        b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    f.data(Resp, b"HTTP/1.1 200 OK\r\n");
    f.gap(Resp, 50);
    f.data(
        Resp,
        b"lost bytes\r\nHTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n",
    );
    let (s, _) = f.finish();
    let h = http(&s);
    assert_eq!(h.errors[0].request.as_ref().unwrap().target, "/b");
    assert!(h.unanswered.is_empty());

    // Same in the request direction: the damaged request is not counted.
    let mut f = Feeder::new();
    f.data(Orig, b"GET /a HTTP/1.1\r\nHo");
    f.gap(Orig, 20);
    f.data(Orig, b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n");
    f.data(
        Resp,
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
    );
    let (s, _) = f.finish();
    let h = http(&s);
    assert_eq!((h.requests, h.responses), (1, 1));
    assert_eq!(h.errors[0].request.as_ref().unwrap().target, "/b");
}

#[test]
fn http_header_block_over_the_cap_is_an_anomaly() {
    let mut head = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    let mut i = 0;
    while head.len() <= MAX_HEADER_BYTES + 100 {
        head.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "v".repeat(90)).as_bytes());
        i += 1;
    }
    head.extend_from_slice(b"\r\n");
    for piece in [head.len(), 1000, 1] {
        let mut f = Feeder::new();
        f.pieces(Orig, &head, piece);
        f.data(Resp, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let (s, ev) = f.finish();
        let h = http(&s);
        assert_eq!(
            h.anomaly,
            Some("HTTP header block larger than the cap"),
            "pieces of {piece}"
        );
        assert_eq!((h.requests, h.responses), (0, 0));
        assert!(ev.is_empty());
    }
    // Just under the cap is fine.
    let mut head = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    head.extend_from_slice(
        format!("Cookie: {}\r\n\r\n", "c".repeat(MAX_HEADER_BYTES - 60)).as_bytes(),
    );
    assert!(head.len() <= MAX_HEADER_BYTES);
    let mut f = Feeder::new();
    f.pieces(Orig, &head, 1448);
    let (s, _) = f.finish();
    assert_eq!(http(&s).anomaly, None);
    assert_eq!(http(&s).requests, 1);
}

#[test]
fn http_unanswered_requests_are_listed_at_finish() {
    let mut f = Feeder::new();
    f.data(Orig, b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n");
    f.data(Resp, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    f.data(
        Orig,
        b"GET /b HTTP/1.1\r\nHost: a\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    let (s, _) = f.finish();
    let h = http(&s);
    let targets: Vec<&str> = h.unanswered.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["/b", "/c"]);
    assert_eq!(h.unanswered[0].frame.number, 3);
    assert_eq!(
        h.bytes_after_unanswered, 0,
        "the server sent nothing after them"
    );

    // The server started answering, then stopped.
    let mut f = Feeder::new();
    f.data(Orig, b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n");
    f.data(Resp, b"HTTP/1.1 50");
    let (s, _) = f.finish();
    assert_eq!(http(&s).unanswered.len(), 1);
    assert_eq!(http(&s).bytes_after_unanswered, 11);

    // More pipelined requests than the cap: an anomaly, the list stays bounded.
    let mut f = Feeder::new();
    for i in 0..MAX_PIPELINE + 5 {
        f.data(
            Orig,
            format!("GET /{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
        );
    }
    let (s, _) = f.finish();
    let h = http(&s);
    assert_eq!(h.unanswered.len(), MAX_PIPELINE);
    assert_eq!(h.requests as usize, MAX_PIPELINE + 5);
    assert_eq!(h.anomaly, Some("more pipelined requests than the cap"));
    assert_eq!(h.requests_over_cap, 5);
}

#[test]
fn http_pending_request_cap_is_configurable() {
    let mut app = AppFlow::with_max_pending(1, 3);
    let fr = |n| FrameRef {
        file: 0,
        number: n,
        ts: Default::default(),
    };
    for i in 0..10u64 {
        let req = format!("GET /{i} HTTP/1.1\r\nHost: a\r\n\r\n");
        app.event(
            Orig,
            fr(i + 1),
            StreamEvent::Data(req.as_bytes()),
            &mut |_| {},
        );
    }
    let s = app.finish();
    let h = s.http.as_ref().unwrap();
    assert_eq!(h.requests, 10);
    assert_eq!(h.unanswered.len(), 3);
    assert_eq!(h.requests_over_cap, 7);
}

#[test]
fn http_server_headers_status_counts_and_errors_are_bounded() {
    let mut f = Feeder::new();
    let statuses: Vec<u16> = (0..20).map(|i| 500 + i).chain([200, 200, 404]).collect();
    for (i, st) in statuses.iter().enumerate() {
        f.data(
            Orig,
            format!("GET /{i} HTTP/1.1\r\nHost: h{}.lab\r\n\r\n", i % 6).as_bytes(),
        );
        f.data(
            Resp,
            format!(
                "HTTP/1.1 {st} X\r\nServer: srv{}\r\nContent-Length: 0\r\n\r\n",
                i % 6
            )
            .as_bytes(),
        );
    }
    let (s, _) = f.finish();
    let h = http(&s);
    assert_eq!(h.responses as usize, statuses.len());
    assert_eq!(h.status_counts.len(), MAX_STATUS_KINDS);
    assert_eq!(h.status_counts[0], (500, 1));
    assert_eq!(h.errors.len(), MAX_ERRORS);
    assert_eq!(h.errors[7].response.server.as_deref(), Some("srv1"));
    assert_eq!(h.servers, ["srv0", "srv1", "srv2", "srv3"]);
    assert_eq!(h.hosts.len(), 4);

    let mut f = Feeder::new();
    f.data(
        Orig,
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    f.data(
        Resp,
        b"HTTP/1.1 200 OK\r\nServer: Apache\r\nContent-Length: 0\r\n\r\n",
    );
    f.data(
        Resp,
        b"HTTP/1.1 200 OK\r\nserver: Apache\r\nContent-Length: 0\r\n\r\n",
    );
    let (s, _) = f.finish();
    assert_eq!(http(&s).servers, ["Apache"]);
    assert_eq!(http(&s).status_counts, [(200, 2)]);
}

// ---------------------------------------------------------------------------------------------
// 4. Detection.
// ---------------------------------------------------------------------------------------------

#[test]
fn detect_tls_from_the_first_bytes_even_one_at_a_time() {
    let mut f = Feeder::new();
    let ch = unhex(TLS13_FULL[0].1);
    f.pieces(Orig, &ch, 1);
    let (s, ev) = f.finish();
    assert_eq!(s.proto, Proto::Tls);
    assert_eq!(
        tls(&s).client_hello.as_ref().unwrap().frame.number,
        ch.len() as u64
    );
    assert_eq!(ev.len(), 1);

    // Capture began mid-handshake: the server's flight is the first thing seen.
    let mut f = Feeder::new();
    f.data(Resp, &unhex(TLS12_FULL[1].1));
    let (s, _) = f.finish();
    assert_eq!(s.proto, Proto::Tls);
    assert!(tls(&s).server_hello.is_some());

    // An alert as the first record (server refusing at once) is TLS too.
    let mut f = Feeder::new();
    f.data(Resp, &[0x15, 0x03]);
    f.data(Resp, &[0x01, 0x00, 0x02, 0x02, 0x28]);
    let (s, _) = f.finish();
    assert_eq!(s.proto, Proto::Tls);
    assert_eq!(tls(&s).alerts[0].description, 40);
}

#[test]
fn detect_http_methods_split_across_segments() {
    let mut f = Feeder::new();
    f.data(Orig, b"GE");
    f.data(Orig, b"T /x HTTP/1.1\r\nHost: a\r\n\r\n");
    let (s, ev) = f.finish();
    assert_eq!(s.proto, Proto::Http);
    assert_eq!(ev, [AppEvent::HttpRequest { frame: fr(2) }]);
    assert_eq!(http(&s).unanswered[0].method, "GET");
    assert_eq!(http(&s).unanswered[0].target, "/x");

    for req in [
        &b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
        b"DELETE /r HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        let mut f = Feeder::new();
        f.pieces(Orig, req, 1);
        let (s, ev) = f.finish();
        assert_eq!(s.proto, Proto::Http, "{}", String::from_utf8_lossy(req));
        assert_eq!(
            ev,
            [AppEvent::HttpRequest {
                frame: fr(req.len() as u64)
            }]
        );
    }
}

#[test]
fn detect_responder_speaking_http_first_mid_connection() {
    let mut f = Feeder::new();
    f.data(
        Resp,
        b"HTTP/1.1 502 Bad Gateway\r\nServer: nginx\r\nContent-Length: 3\r\n\r\nbad",
    );
    f.data(Orig, b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    f.data(Resp, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let (s, ev) = f.finish();
    assert_eq!(s.proto, Proto::Http);
    let h = http(&s);
    assert_eq!((h.requests, h.responses), (1, 2));
    assert!(
        h.errors[0].request.is_none(),
        "its request was before the capture"
    );
    assert_eq!(h.errors[0].response.body_snippet, "bad");
    assert!(h.unanswered.is_empty());
    assert_eq!(ev.len(), 3);

    let mut f = Feeder::new();
    f.pieces(Resp, b"HTTP/1.1 204 No Content\r\n\r\n", 1);
    let (s, _) = f.finish();
    assert_eq!(s.proto, Proto::Http);
}

#[test]
fn detect_other_protocols() {
    for (dir, first) in [
        (Resp, &b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n"[..]),
        (Orig, b"SSH-2.0-OpenSSH_9.6\r\n"),
        (Resp, b"220 mail.lab ESMTP Postfix\r\n"),
        (Orig, b"get / http/1.1\r\n\r\n"),
        (Orig, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        (Orig, b"\x16\x02\x00\x00\x05hello"),
    ] {
        let mut f = Feeder::new();
        f.pieces(dir, first, 2);
        // Whatever follows, on either side, is not parsed.
        f.data(dir.other(), b"GET / HTTP/1.1\r\n\r\n");
        f.data(dir, &unhex(TLS13_FULL[0].1));
        let (s, ev) = f.finish();
        assert_eq!(s.proto, Proto::Other, "{}", String::from_utf8_lossy(first));
        assert!(s.tls.is_none() && s.http.is_none());
        assert!(ev.is_empty());
    }
}

#[test]
fn detect_undecided_or_broken_starts_do_not_panic() {
    // Too few bytes to decide.
    for b in [&b"G"[..], b"GE", b"\x16\x03", b"HTTP/1"] {
        let mut f = Feeder::new();
        f.data(if b[0] == b'H' { Resp } else { Orig }, b);
        let (s, ev) = f.finish();
        assert_eq!(s.proto, Proto::Unknown, "{b:?}");
        assert!(ev.is_empty());
    }
    // A gap before anything: nothing can be known.
    let mut f = Feeder::new();
    f.gap(Orig, 1000);
    f.data(Orig, &unhex(TLS13_FULL[0].1));
    let (s, _) = f.finish();
    assert_eq!(s.proto, Proto::Other);
    // Empty data events change nothing.
    let mut f = Feeder::new();
    f.data(Orig, b"");
    f.data(Orig, b"GET / HTTP/1.1\r\n\r\n");
    let (s, _) = f.finish();
    assert_eq!(http(&s).requests, 1);
}

// ---------------------------------------------------------------------------------------------
// 5. Robustness: random and mutated input, random segmentation, random gaps.
// ---------------------------------------------------------------------------------------------

/// Bounds every summary must respect, whatever the input.
#[track_caller]
fn check_bounds(s: &AppSummary) {
    if let Some(t) = &s.tls {
        assert!(t.alerts.len() <= MAX_ALERTS);
    }
    if let Some(h) = &s.http {
        assert!(h.status_counts.len() <= MAX_STATUS_KINDS);
        assert!(h.errors.len() <= MAX_ERRORS);
        assert!(h.unanswered.len() <= MAX_PIPELINE);
        assert!(h.hosts.len() <= 4 && h.servers.len() <= 4);
        for e in &h.errors {
            // Lossy decoding may expand invalid bytes (see the ignored snippet test), never more.
            assert!(e.response.body_snippet.len() <= 3 * BODY_SNIPPET);
        }
    }
    serde_json::to_string(s).expect("summary serializes");
}

/// Feeds `turns` cut at random points, with random gaps and ends sprinkled in.
fn feed_randomly(rng: &mut Rng, turns: &[(Direction, Vec<u8>)]) -> AppSummary {
    let mut f = Feeder::new();
    for (dir, b) in turns {
        let mut i = 0;
        while i < b.len() {
            let n = match rng.below(4) {
                0 => 1 + rng.below(3),
                1 => 1 + rng.below(64),
                _ => 1 + rng.below(2000),
            }
            .min(b.len() - i);
            if rng.chance(1, 25) {
                // Lose these bytes.
                f.gap(*dir, n as u32);
            } else {
                f.data(*dir, &b[i..i + n]);
            }
            if rng.chance(1, 200) {
                f.gap(*dir, rng.next() as u32);
            }
            if rng.chance(1, 300) {
                f.ev(
                    *dir,
                    StreamEvent::End {
                        rst: rng.chance(1, 2),
                    },
                );
            }
            i += n;
        }
    }
    let (s, _) = f.finish();
    s
}

#[test]
fn fuzz_random_bytes_never_panic() {
    let mut rng = Rng::new(0xF022);
    let starts: [&[u8]; 6] = [
        b"",
        &[22, 3, 1],
        &[21, 3, 3, 0, 2],
        b"GET / HTTP/1.1\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"CONNECT a:443 HTTP/1.1\r\n\r\n",
    ];
    for _ in 0..3000 {
        let mut turns = Vec::new();
        for t in 0..1 + rng.below(8) {
            let dir = if rng.chance(1, 2) { Orig } else { Resp };
            let mut b = if t < 2 {
                starts[rng.below(starts.len())].to_vec()
            } else {
                Vec::new()
            };
            let n = rng.below(600);
            b.extend(rng.bytes(n));
            turns.push((dir, b));
        }
        check_bounds(&feed_randomly(&mut rng, &turns));
    }
}

#[test]
fn fuzz_mutated_real_streams_never_panic() {
    let convs = [
        Conv::from_frames(TLS12_FULL, false),
        Conv::from_frames(TLS13_FULL, true),
        Conv::from_frames(TLS13_HRR, true),
        Conv::from_frames(TLS12_PLAIN_ALERT, false),
        conv_keepalive(),
        conv_pipelined(),
        conv_connect(),
        conv_until_close(),
    ];
    let mut rng = Rng::new(0xBADC0DE);
    for i in 0..4000 {
        let mut turns = convs[i % convs.len()].turns.clone();
        for _ in 0..1 + rng.below(6) {
            let t = rng.below(turns.len());
            let b = &mut turns[t].1;
            if b.is_empty() {
                continue;
            }
            let at = rng.below(b.len());
            match rng.below(6) {
                0 | 1 => b[at] ^= 1 << rng.below(8),
                2 => b[at] = [0, 0xFF, b'\r', b'\n', b'0', b' ', b';'][rng.below(7)],
                3 => b.truncate(at),
                4 => {
                    let k = 1 + rng.below(40);
                    let junk = rng.bytes(k);
                    b.splice(at..at, junk);
                }
                _ => {
                    // Duplicate a range (as a confused middlebox would).
                    let end = (at + 1 + rng.below(200)).min(b.len());
                    let dup = b[at..end].to_vec();
                    b.splice(end..end, dup);
                }
            }
        }
        check_bounds(&feed_randomly(&mut rng, &turns));
    }
}

#[test]
fn fuzz_huge_lengths_and_sizes_never_panic() {
    // Length fields at their maxima, in both parsers.
    let cases: Vec<(Direction, Vec<u8>)> = vec![
        (Orig, vec![22, 3, 3, 0x48, 0x00, 1, 0xFF, 0xFF, 0xFF]),
        (Orig, vec![22, 3, 3, 0x00, 0x04, 1, 0, 0, 0]),
        (Resp, vec![22, 3, 3, 0x00, 0x04, 2, 0, 0, 0]),
        (
            Resp,
            b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\nab".to_vec(),
        ),
        (
            Resp,
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nab".to_vec(),
        ),
        (
            Resp,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFFFFF\r\nab"
                .to_vec(),
        ),
        (
            Resp,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        ),
        (
            Orig,
            b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\nGET / HTTP/1.1\r\n\r\n".to_vec(),
        ),
        (
            Orig,
            b"GET / HTTP/1.1\r\nBroken header line\r\n\r\n".to_vec(),
        ),
    ];
    for (dir, b) in &cases {
        for piece in [b.len(), 1] {
            let mut f = Feeder::new();
            if *dir == Resp {
                f.data(Orig, b"GET / HTTP/1.1\r\n\r\n");
            }
            f.pieces(*dir, b, piece);
            f.gap(*dir, u32::MAX);
            f.data(*dir, b);
            let (s, _) = f.finish();
            check_bounds(&s);
        }
    }
    // A hello of length 0 is malformed, not a crash.
    let mut f = Feeder::new();
    f.data(Orig, &[22, 3, 3, 0x00, 0x04, 1, 0, 0, 0]);
    let (s, ev) = f.finish();
    assert_eq!(tls(&s).anomaly, Some("malformed TLS hello"));
    assert_eq!(
        ev,
        [AppEvent::TlsHandshake {
            frame: fr(1),
            msg: 1
        }]
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Reassembler.
// ---------------------------------------------------------------------------------------------

/// What a reassembler emitted, laid out as the stream: `Some(byte)` delivered, `None` a gap.
#[derive(Default, Debug)]
struct Out {
    stream: Vec<Option<u8>>,
    gaps: Vec<(usize, u32)>,
    ended: bool,
}

impl Out {
    fn sink(&mut self) -> impl FnMut(StreamEvent<'_>) + '_ {
        move |e| match e {
            StreamEvent::Data(d) => {
                assert!(!self.ended, "data after End");
                self.stream.extend(d.iter().map(|&x| Some(x)));
            }
            StreamEvent::Gap(n) => {
                assert!(!self.ended, "gap after End");
                self.gaps.push((self.stream.len(), n));
                // A bogus huge gap is recorded, not materialised.
                let n = (n as usize).min(1 << 22);
                self.stream.extend(std::iter::repeat_n(None, n));
            }
            StreamEvent::End { .. } => self.ended = true,
        }
    }
    fn data(&self) -> Vec<u8> {
        self.stream.iter().flatten().copied().collect()
    }
}

/// Delivers byte ranges `[a, b)` of `data` (stream starting at `isn + 1`).
fn deliver(r: &mut Reassembler, out: &mut Out, isn: u32, data: &[u8], ranges: &[(usize, usize)]) {
    for &(a, b) in ranges {
        let seq = isn.wrapping_add(1).wrapping_add(a as u32);
        r.segment(seq, (b - a) as u32, &data[a..b], out.sink());
    }
}

/// Reordering the reassembler is built for: a segment overtaken by up to a few contiguous
/// later ones (held as one run), retransmissions of old or held bytes, and retransmissions
/// repacketised to overlap what was delivered or held.
fn supported_schedule(rng: &mut Rng, n: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut cursor = 0;
    let mss = |rng: &mut Rng| 1 + rng.below(1460);
    while cursor < n {
        let first = (cursor, (cursor + mss(rng)).min(n));
        if first.1 < n && rng.chance(1, 4) {
            let mut held = Vec::new();
            let mut c = first.1;
            for _ in 0..1 + rng.below(4) {
                if c >= n {
                    break;
                }
                let e = (c + mss(rng)).min(n);
                held.push((c, e));
                c = e;
            }
            for j in 0..held.len() {
                out.push(held[j]);
                if rng.chance(1, 4) {
                    out.push(held[rng.below(j + 1)]);
                }
            }
            // The late segment, maybe re-cut to overlap the delivered and the held bytes.
            let a = if rng.chance(1, 3) {
                first.0.saturating_sub(rng.below(200))
            } else {
                first.0
            };
            let b = if rng.chance(1, 3) {
                (first.1 + rng.below(300)).min(c)
            } else {
                first.1
            };
            out.push((a, b));
            cursor = c;
        } else {
            let a = if rng.chance(1, 4) {
                cursor.saturating_sub(rng.below(500))
            } else {
                cursor
            };
            out.push((a, first.1));
            cursor = first.1;
        }
        if cursor > 0 && rng.chance(1, 6) {
            let a = rng.below(cursor);
            out.push((a, (a + 1 + rng.below(1460)).min(cursor)));
        }
    }
    out
}

fn random_isn(rng: &mut Rng) -> u32 {
    if rng.chance(1, 3) {
        u32::MAX - rng.below(40_000) as u32 // the stream wraps around 0
    } else {
        rng.next() as u32
    }
}

#[test]
fn reasm_reordered_duplicated_overlapping_segments_reproduce_the_stream() {
    let mut rng = Rng::new(0x5EC);
    for round in 0..600 {
        let n = 1 + rng.below(40_000);
        let data = rng.bytes(n);
        let isn = random_isn(&mut rng);
        let sched = supported_schedule(&mut rng, n);
        let mut r = Reassembler::default();
        r.syn(isn);
        let mut out = Out::default();
        deliver(&mut r, &mut out, isn, &data, &sched);
        assert!(out.gaps.is_empty(), "round {round}: gaps {:?}", out.gaps);
        assert_eq!(
            out.stream.len(),
            n,
            "round {round}: all delivered before the end"
        );
        r.end(false, out.sink());
        assert!(out.gaps.is_empty() && out.ended);
        assert!(out.data() == data, "round {round}: bytes differ");
    }
}

/// Segment boundaries of a stream of `n` bytes.
fn cut(rng: &mut Rng, n: usize) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let mut a = 0;
    while a < n {
        let b = (a + 1 + rng.below(1460)).min(n);
        v.push((a, b));
        a = b;
    }
    v
}

#[test]
fn reasm_one_missing_segment_is_one_gap_of_its_length() {
    let mut rng = Rng::new(0x6A9);
    for round in 0..600 {
        let n = 2 + rng.below(60_000);
        let data = rng.bytes(n);
        let isn = random_isn(&mut rng);
        let segs = cut(&mut rng, n);
        if segs.len() < 3 {
            continue;
        }
        // Any but the last (nothing after the last shows the hole; the SYN shows a missing first).
        let k = rng.below(segs.len() - 1);
        let (ka, kb) = segs[k];
        let mut sched: Vec<(usize, usize)> = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            if i != k {
                sched.push(*s);
                if rng.chance(1, 5) {
                    sched.push(segs[rng.below(i + 1)]); // retransmission (maybe of held bytes)
                }
            }
        }
        sched.retain(|s| *s != segs[k]);
        let by_ack = rng.chance(1, 2);
        let mut r = Reassembler::default();
        r.syn(isn);
        let mut out = Out::default();
        if by_ack {
            // Some segments after the hole are held; then the receiver acknowledges at or beyond
            // the held run's start (it got the segment; the capture did not): the gap comes now.
            let first_after = sched
                .iter()
                .position(|s| s.0 > ka)
                .expect("a segment after");
            let split = first_after + 1 + rng.below(sched.len() - first_after);
            deliver(&mut r, &mut out, isn, &data, &sched[..split]);
            assert!(out.gaps.is_empty(), "round {round}: held, not given up yet");
            let held_end = sched[..split].iter().map(|s| s.1).max().unwrap();
            let ack_at = kb + rng.below(held_end - kb + 1);
            r.acked(isn.wrapping_add(1).wrapping_add(ack_at as u32), out.sink());
            assert_eq!(
                out.gaps,
                [(ka, (kb - ka) as u32)],
                "round {round}: at the ack"
            );
            assert_eq!(
                out.stream.len(),
                held_end,
                "round {round}: held bytes follow the gap"
            );
            deliver(&mut r, &mut out, isn, &data, &sched[split..]);
        } else {
            deliver(&mut r, &mut out, isn, &data, &sched);
            assert_eq!(out.stream.len(), ka, "round {round}: the rest is held");
        }
        r.end(true, out.sink());
        assert_eq!(
            out.gaps,
            [(ka, (kb - ka) as u32)],
            "round {round} (ack: {by_ack})"
        );
        assert_eq!(out.stream.len(), n);
        for (i, b) in out.stream.iter().enumerate() {
            let want = if (ka..kb).contains(&i) {
                None
            } else {
                Some(data[i])
            };
            assert_eq!(*b, want, "round {round}: byte {i}");
        }
    }
}

/// The invariant for any delivery order: what comes out, laid end to end with its gaps, is the
/// stream — every delivered byte at its own offset, nothing twice, the gaps exactly the bytes
/// not delivered.
#[track_caller]
fn check_accounting(out: &Out, data: &[u8], label: &str) {
    assert!(
        out.gaps.iter().all(|g| (g.1 as usize) <= data.len()),
        "{label}: impossible gap {:?}",
        out.gaps
    );
    assert_eq!(out.stream.len(), data.len(), "{label}: stream length");
    for (i, b) in out.stream.iter().enumerate() {
        if let Some(b) = b {
            assert_eq!(*b, data[i], "{label}: byte {i} delivered out of place");
        }
    }
}

#[test]

fn reasm_any_delivery_order_accounts_for_every_byte() {
    let mut rng = Rng::new(0xACC);
    for round in 0..2000 {
        let n = 1 + rng.below(20_000);
        let data = rng.bytes(n);
        let isn = random_isn(&mut rng);
        let mut sched = cut(&mut rng, n);
        for _ in 0..rng.below(5) {
            let a = rng.below(n);
            sched.push((a, (a + 1 + rng.below(3000)).min(n)));
        }
        for i in (1..sched.len()).rev() {
            sched.swap(i, rng.below(i + 1));
        }
        let mut r = Reassembler::default();
        r.syn(isn);
        let mut out = Out::default();
        deliver(&mut r, &mut out, isn, &data, &sched);
        r.end(false, out.sink());
        check_accounting(&out, &data, &format!("round {round}"));
    }
}

#[test]
fn reasm_segment_inside_the_hole_before_the_held_run() {
    let data = b"aabbccdd";
    let mut r = Reassembler::default();
    r.syn(0);
    let mut out = Out::default();
    deliver(&mut r, &mut out, 0, data, &[(0, 2), (6, 8), (4, 6), (2, 4)]);
    r.end(false, out.sink());
    check_accounting(&out, data, "a, d, c, b");
}

#[test]
fn reasm_snaplen_cut_segments_are_gaps_and_the_stream_goes_on() {
    let mut rng = Rng::new(0x5AA);
    for _ in 0..200 {
        let n = 1 + rng.below(20_000);
        let data = rng.bytes(n);
        let isn = random_isn(&mut rng);
        let mut r = Reassembler::default();
        r.syn(isn);
        let mut out = Out::default();
        let mut missing = vec![false; n];
        for (a, b) in cut(&mut rng, n) {
            let have = if rng.chance(1, 4) {
                rng.below(b - a)
            } else {
                b - a
            };
            missing[a + have..b].iter_mut().for_each(|m| *m = true);
            let seq = isn.wrapping_add(1).wrapping_add(a as u32);
            r.segment(seq, (b - a) as u32, &data[a..a + have], out.sink());
        }
        r.end(false, out.sink());
        check_accounting(&out, &data, "snaplen");
        for (i, b) in out.stream.iter().enumerate() {
            assert_eq!(b.is_none(), missing[i], "byte {i}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TLS 1.3 draft ServerHellos (issue 11 item 7): recognised, named, and switching to encryption.
// ---------------------------------------------------------------------------------------------

/// A ServerHello handshake message: `version`, a fixed random, then either the draft layout
/// (cipher, extensions) or, with `sid`, the TLS 1.2 layout (session id, cipher, compression,
/// extensions). `ext` is the raw extension block (without its length).
fn server_hello_msg(version: u16, sid: Option<&[u8]>, ext: &[u8]) -> Vec<u8> {
    let mut b = version.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x42; 32]);
    if let Some(sid) = sid {
        b.push(sid.len() as u8);
        b.extend_from_slice(sid);
    }
    b.extend_from_slice(&[0x13, 0x01]);
    if sid.is_some() {
        b.push(0);
    }
    b.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    b.extend_from_slice(ext);
    let mut m = vec![2];
    m.extend_from_slice(&(b.len() as u32).to_be_bytes()[1..]);
    m.extend_from_slice(&b);
    m
}

/// Draft-era key_share (type 40) with a 32-byte x25519 share.
fn draft_key_share() -> Vec<u8> {
    let mut e = vec![0x00, 0x28, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20];
    e.extend_from_slice(&[7; 32]);
    e
}

/// ClientHello, then the ServerHello `sh`, then one encrypted record from each side.
#[track_caller]
fn draft_conversation(sh: &[u8]) -> AppSummary {
    let (ch, _) = client_hello_message();
    let mut f = Feeder::new();
    f.data(Orig, &records(22, &ch, 16384));
    f.data(Resp, &records(22, sh, 16384));
    f.data(Resp, &records(23, &[9; 40], 16384));
    f.data(Orig, &records(23, &[9; 40], 16384));
    f.finish().0
}

#[test]
fn tls13_draft16_server_hello_recognised_and_named() {
    let s = draft_conversation(&server_hello_msg(0x7f10, None, &draft_key_share()));
    let t = tls(&s);
    let sh = t
        .server_hello
        .as_ref()
        .expect("draft ServerHello recognised");
    assert_eq!(
        (sh.frame.number, sh.version, sh.cipher),
        (2, 0x7f10, 0x1301)
    );
    assert_eq!(tls::tls_version(sh.version), "TLS 1.3 draft 16");
    assert!(t.negotiated_tls13());
    assert_eq!(t.encrypted_from, [Some(fr(2)), Some(fr(2))]);
    assert_eq!(t.encrypted_records, [1, 1]);
    assert_eq!(t.anomaly, None);
}

#[test]
fn tls13_draft_range_edges_and_draft18_named() {
    for (v, name) in [
        (0x7f0e, "TLS 1.3 draft 14"),
        (0x7f12, "TLS 1.3 draft 18"),
        (0x7f1c, "TLS 1.3 draft 28"),
    ] {
        let s = draft_conversation(&server_hello_msg(v, None, &draft_key_share()));
        let sh = tls(&s).server_hello.as_ref().expect("recognised");
        assert_eq!(sh.version, v);
        assert_eq!(tls::tls_version(v), name);
    }
    // Not a draft: stays a raw number, and a ServerHello with it is not understood.
    assert_eq!(tls::tls_version(0x7e02), "0x7e02");
    let s = draft_conversation(&server_hello_msg(0x7e02, None, &draft_key_share()));
    assert!(tls(&s).server_hello.is_none());
    assert_eq!(tls(&s).anomaly, Some("malformed TLS hello"));
}

#[test]
fn facebook_draft_server_hello_in_tls12_layout() {
    let s = draft_conversation(&server_hello_msg(0xfb1a, Some(&[5; 32]), &[]));
    let t = tls(&s);
    let sh = t
        .server_hello
        .as_ref()
        .expect("0xfb1a ServerHello recognised");
    assert_eq!((sh.version, sh.cipher), (0xfb1a, 0x1301));
    assert_eq!(tls::tls_version(0xfb1a), "TLS 1.3 draft 26 (Facebook)");
    assert!(t.negotiated_tls13() && t.anomaly.is_none());
}

#[test]
fn draft_server_hello_with_bad_lengths_is_malformed_not_invented() {
    // Extension length one byte longer than the message: neither layout fits.
    let mut m = server_hello_msg(0x7f10, None, &draft_key_share());
    let i = 4 + 2 + 32 + 2;
    m[i + 1] += 1;
    let s = draft_conversation(&m);
    assert!(tls(&s).server_hello.is_none());
    assert_eq!(tls(&s).anomaly, Some("malformed TLS hello"));
}

#[test]
fn supported_versions_draft_counts_as_tls13() {
    // Draft 22+ layout: legacy version 0x0303, the draft in supported_versions.
    let mut ext = vec![0x00, 0x2b, 0x00, 0x02, 0x7f, 0x1c];
    ext.extend_from_slice(&draft_key_share());
    let s = draft_conversation(&server_hello_msg(0x0303, Some(&[5; 32]), &ext));
    let t = tls(&s);
    assert_eq!(t.server_hello.as_ref().map(|s| s.version), Some(0x7f1c));
    assert!(t.negotiated_tls13());
    assert_eq!(t.encrypted_from, [Some(fr(2)), Some(fr(2))]);
}

/// Control characters in a request target or a header value (httparse refuses them) must not
/// lose the exchange: the 502 is still seen, and the values keep the bytes that were sent (the
/// reports escape them).
#[test]
fn http_control_characters_in_target_and_headers_are_kept_as_data() {
    let mut f = Feeder::new();
    f.data(Orig, b"GET /a\x1b[31mb HTTP/1.1\r\nHost: h\x07st\r\n\r\n");
    f.data(
        Resp,
        b"HTTP/1.1 502 Bad\x1b Gateway\r\nServer: evil\x1b]0;t\x07\r\nContent-Length: 3\r\n\r\nbad",
    );
    let (s, _) = f.finish();
    let h = http(&s);
    assert_eq!((h.requests, h.responses), (1, 1));
    let e = &h.errors[0];
    assert_eq!(e.response.status, 502);
    assert_eq!(e.response.server.as_deref(), Some("evil\x1b]0;t\x07"));
    assert_eq!(e.response.reason, "Bad\x1b Gateway");
    let q = e.request.as_ref().expect("request paired");
    assert_eq!(q.target, "/a\x1b[31mb");
    assert_eq!(q.host.as_deref(), Some("h\x07st"));
    assert_eq!(e.response.body_snippet, "bad");
}

/// Fuzzing regression (http_stream, split invariance): a request without a body is complete in
/// its own frame, even when the next frame carries only the start of the next request's header
/// block (it used to be moved to that frame).
#[test]
fn request_complete_frame_does_not_move_to_the_next_requests_first_bytes() {
    let fr = |n| FrameRef {
        file: 0,
        number: n,
        ts: Timestamp(n as i64 * 1_000_000),
    };
    let mut app = AppFlow::new(1);
    let mut feed = |n, b: &[u8]| app.event(Orig, fr(n), StreamEvent::Data(b), &mut |_| {});
    feed(1, b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n");
    feed(2, b"GET /b HTTP/1.1\r\nHo");
    feed(
        3,
        b"st: a\r\n\r\nPOST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab",
    );
    feed(4, b"cd");
    let s = app.finish();
    let h = s.http.as_ref().unwrap();
    let done: Vec<(String, u64)> = h
        .unanswered
        .iter()
        .map(|r| (r.target.to_string(), r.complete_at.unwrap().number))
        .collect();
    assert_eq!(done, [("/a".into(), 1), ("/b".into(), 3), ("/c".into(), 4)]);
}

/// Fuzzing regression (http_stream, the minimized input `fuzz/regressions/http_stream-1`): two
/// frames of a request stream, each delivered whole and in the cuts the fuzzer chose, give the
/// same summary. The first request (no body) is complete in frame 1; the cut version used to
/// move that to frame 2, whose first byte arrived before the second request was parsed.
#[test]
fn request_stream_split_as_the_fuzzer_did_gives_the_same_summary() {
    /// (frame number, the frame's bytes, the same bytes as the fuzzer cut them).
    type Frame<'a> = (u64, &'a [u8], &'a [&'a [u8]]);
    let frames: [Frame<'_>; 2] = [
        (
            1,
            b"GET n HTTP/1.1\r\n\r\nT / ",
            &[b"GET n HT", b"TP/1.1\r\n\r\n", b"T /", b" "],
        ),
        (2, b"HTTP/1.1\r\n\r\n", &[b"H", b"TTP/1.", b"1\r\n\r\n"]),
    ];
    let run = |split: bool| {
        let mut app = AppFlow::new(1);
        for (n, whole, cuts) in &frames {
            let fr = FrameRef {
                file: 0,
                number: *n,
                ts: Timestamp(*n as i64 * 1_000_000),
            };
            let chunks: &[&[u8]] = if split { cuts } else { &[*whole] };
            for c in chunks {
                app.event(Orig, fr, StreamEvent::Data(c), &mut |_| {});
            }
        }
        app.finish()
    };
    let (whole, split) = (run(false), run(true));
    assert_eq!(format!("{:?}", whole), format!("{:?}", split));
    let first = &whole.http.as_ref().unwrap().unanswered[0];
    assert_eq!(first.complete_at.map(|f| f.number), Some(1));
}

/// Feeds `frames` (frame number, direction, bytes, the lengths the fuzzer cut them into) to a
/// `TlsParser` whole and cut; returns both (events, summary) as text.
fn tls_whole_and_cut(frames: &[(u64, Direction, &str, &[usize])]) -> [String; 2] {
    let unhex = |h: &str| -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    };
    [false, true].map(|cut| {
        let mut p = tls::TlsParser::default();
        let mut events = Vec::new();
        for (n, dir, hex, cuts) in frames {
            let bytes = unhex(hex);
            let fr = FrameRef {
                file: 0,
                number: *n,
                ts: Timestamp(*n as i64 * 1_000_000),
            };
            let mut at = 0;
            let lens = if cut {
                cuts.to_vec()
            } else {
                vec![bytes.len()]
            };
            for l in lens {
                p.data(*dir, fr, &bytes[at..at + l]);
                at += l;
                events.append(&mut p.events);
            }
            assert_eq!(at, bytes.len());
        }
        format!("{:?}\n{:?}", events, p.summary)
    })
}

/// Fuzzing regression (tls_stream, the minimized input `fuzz/regressions/tls_stream-1`): a
/// ServerHello record whose handshake message is longer than the record, then a record of an
/// unknown type, each cut into pieces: the same events and summary as whole.
#[test]
fn tls_records_cut_as_the_fuzzer_did_give_the_same_result() {
    let [whole, cut] = tls_whole_and_cut(&[
        (1, Resp, "160303007e0200007603030500f7a5bb0823b9ebc29696f89add3a542b4c995698dadc86f2cc5dd5243a8b20648aa283e06abc86194235024b2f157e0aa9f1f50e01a3eb6434d7626f604ddb130200002e002b000203040033001a1335f0dc2dd82f6a4fb8dce95718009081eb69a22e03c8362285e78719ffffffffffffff01000000c1cf", &[8, 1, 10, 52, 8, 1, 10, 8, 13, 7, 1, 1, 1, 7, 1, 1, 3]),
        (2, Orig, "0203040033001a1335f0dc2dd82f6a4fb8dce95718009081eb69a22e033a542b4c995698dadc86f2cc5dd5243a8b20648aa283e06abc86194235024b2f157e0aa9f1f50e01a3eb6434d7626f604ddb130200002e002b000203040033001a1335f0dc2dd82f6a4fb8dce95718009081eb69a22e03c8362285e78719ffffffffffffff01000000ffc1cf4274c50100000010135ccdb831dc7034d745c891f6c76d7719237d7d", &[152, 1, 1, 9, 1, 1]),
    ]);
    assert_eq!(whole, cut);
}

/// Replays an input of the `http_stream` / `tls_stream` fuzz targets (fuzz/src/stream.rs: the
/// same seed → pieces → cuts derivation, kept in step with it): returns the pieces and the cuts,
/// as (direction, frame number, bytes, chunk lengths).
fn fuzz_stream_plan(data: &[u8]) -> Vec<(Direction, u64, Vec<u8>, Vec<usize>)> {
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
        }
    }
    let seed = u64::from_le_bytes(data[..8].try_into().unwrap());
    let olen = u16::from_le_bytes([data[8], data[9]]) as usize;
    let rest = &data[10..];
    let (mut orig, mut resp) = rest.split_at(olen.min(rest.len()));
    let mut rng = Rng(seed | 1);
    let mut pieces = Vec::new();
    let mut frame = 1;
    while !orig.is_empty() || !resp.is_empty() {
        let from_orig = if orig.is_empty() {
            false
        } else if resp.is_empty() {
            true
        } else {
            rng.below(2) == 0
        };
        let (dir, s) = if from_orig {
            (Orig, &mut orig)
        } else {
            (Resp, &mut resp)
        };
        let n = match rng.below(4) {
            0 => 1 + rng.below(8),
            1 => 1 + rng.below(200),
            _ => 1 + rng.below(4096),
        }
        .min(s.len());
        let (piece, tail) = s.split_at(n);
        *s = tail;
        assert!(
            rng.below(64) != 0,
            "inputs with capture gaps are not replayed here"
        );
        pieces.push((dir, frame, piece.to_vec()));
        frame += 1;
    }
    let mut rng = Rng((seed.rotate_left(17) ^ 0x9E37_79B9_7F4A_7C15) | 1);
    pieces
        .into_iter()
        .map(|(dir, frame, bytes)| {
            let mut left = bytes.len();
            let mut cuts = Vec::new();
            while left > 0 {
                let n = match rng.below(3) {
                    0 => 1,
                    1 => 1 + rng.below(16),
                    _ => 1 + rng.below(left),
                }
                .min(left);
                cuts.push(n);
                left -= n;
            }
            (dir, frame, bytes, cuts)
        })
        .collect()
}

/// Fuzzing regression (http_stream, `fuzz/regressions/http_stream-2`): a response header block
/// that does not end, close to `MAX_HEADER_BYTES`, while requests wait. Cut at other points the
/// parser used to stop at another byte (at more than `MAX_HEADER_BYTES` buffered, where the
/// in-place path searched `MAX_HEADER_BYTES` + 4), so `bytes_after_unanswered` differed.
#[test]
fn http_header_cap_stops_at_the_same_byte_however_the_stream_is_cut() {
    let plan = fuzz_stream_plan(include_bytes!("../../fuzz/regressions/http_stream-2"));
    let run = |cut: bool| {
        let mut app = AppFlow::new(1);
        for (dir, n, bytes, cuts) in &plan {
            let fr = FrameRef {
                file: 0,
                number: *n,
                ts: Timestamp(*n as i64 * 1_000_000),
            };
            let lens = if cut { cuts.clone() } else { vec![bytes.len()] };
            let mut at = 0;
            for l in lens {
                app.event(*dir, fr, StreamEvent::Data(&bytes[at..at + l]), &mut |_| {});
                at += l;
            }
        }
        app.finish()
    };
    let (whole, cut) = (run(false), run(true));
    assert_eq!(format!("{:?}", whole), format!("{:?}", cut));
    // 16 282 response bytes without a block end: short of the window, so still waiting (not
    // an anomaly), and every one of them counted while the requests waited.
    let h = whole.http.as_ref().unwrap();
    assert_eq!((h.responses, h.anomaly), (0, None));
    assert_eq!(h.bytes_after_unanswered, 16_282);
}

/// The header window is `MAX_HEADER_BYTES` + 4 bytes whatever the cuts: a block whose
/// terminator ends exactly there is parsed, one byte longer is refused.
#[test]
fn http_header_window_edge_does_not_depend_on_cuts() {
    for extra in [0usize, 1] {
        let head = b"HTTP/1.1 200 OK\r\nX: ";
        let pad = MAX_HEADER_BYTES - head.len() + extra;
        let mut block = head.to_vec();
        block.extend(std::iter::repeat_n(b'a', pad));
        block.extend_from_slice(b"\r\n\r\n");
        assert_eq!(block.len(), MAX_HEADER_BYTES + 4 + extra);
        let mut results = Vec::new();
        for cut in [
            block.len(),
            MAX_HEADER_BYTES + 2,
            MAX_HEADER_BYTES - 1,
            1000,
        ] {
            let mut f = Feeder::new();
            f.data(Orig, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
            for c in block.chunks(cut) {
                f.data(Resp, c);
            }
            let (s, _) = f.finish();
            let h = http(&s).clone();
            results.push((h.responses, h.anomaly, h.bytes_after_unanswered));
        }
        assert!(
            results.windows(2).all(|w| w[0] == w[1]),
            "{extra}: {results:?}"
        );
        assert_eq!(results[0].0, 1 - extra as u32, "{extra}: {results:?}");
    }
}

/// `fuzz/regressions/tls_stream-1`, replayed from the file.
#[test]
fn tls_stream_regression_input_replays_identically() {
    let plan = fuzz_stream_plan(include_bytes!("../../fuzz/regressions/tls_stream-1"));
    let hex: Vec<(u64, Direction, String, Vec<usize>)> = plan
        .into_iter()
        .map(|(d, n, b, c)| (n, d, b.iter().map(|x| format!("{:02x}", x)).collect(), c))
        .collect();
    let frames: Vec<(u64, Direction, &str, &[usize])> = hex
        .iter()
        .map(|(n, d, h, c)| (*n, *d, h.as_str(), c.as_slice()))
        .collect();
    let [whole, cut] = tls_whole_and_cut(&frames);
    assert_eq!(whole, cut);
}

/// A ServerHello and ServerHelloDone in one record, one byte per frame (captures/adversarial/
/// tls-one-byte-segments.pcap): the ServerHello is reported in the frame that completes its
/// record, as tshark does, not in the frame that completes the message.
#[test]
fn tls_hello_is_reported_in_the_frame_that_completes_its_record() {
    let sbody: Vec<u8> = [&[3u8, 3][..], &[7; 32], &[0], &[0xc0, 0x2f], &[0], &[0, 0]].concat();
    let mut record = vec![22, 3, 3];
    let hs: Vec<u8> = [
        &[2u8, 0, 0, sbody.len() as u8][..],
        &sbody,
        &[14, 0, 0, 0], // ServerHelloDone
    ]
    .concat();
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    let mut p = tls::TlsParser::default();
    for (i, b) in record.iter().enumerate() {
        let fr = FrameRef {
            file: 0,
            number: i as u64 + 1,
            ts: Timestamp(i as i64),
        };
        p.data(Resp, fr, std::slice::from_ref(b));
    }
    let last = record.len() as u64;
    assert_eq!(
        p.events
            .iter()
            .map(|e| match e {
                AppEvent::TlsHandshake { frame, msg } => (frame.number, *msg),
                _ => (0, 0),
            })
            .collect::<Vec<_>>(),
        [(last, 2)]
    );
    assert_eq!(p.summary.server_hello.as_ref().unwrap().frame.number, last);
}

/// Replays a `http_stream` fuzz input through `AppFlow` whole and cut; returns both summaries
/// and both event lists as text.
fn app_whole_and_cut(data: &[u8]) -> [String; 2] {
    let plan = fuzz_stream_plan(data);
    [false, true].map(|cut| {
        let mut app = AppFlow::new(1);
        let mut events = Vec::new();
        for (dir, n, bytes, cuts) in &plan {
            let fr = FrameRef {
                file: 0,
                number: *n,
                ts: Timestamp(*n as i64 * 1_000_000),
            };
            let lens = if cut { cuts.clone() } else { vec![bytes.len()] };
            let mut at = 0;
            for l in lens {
                let ev = StreamEvent::Data(&bytes[at..at + l]);
                app.event(*dir, fr, ev, &mut |e| events.push(*e));
                at += l;
            }
        }
        format!("{:?}\n{:?}", events, app.finish())
    })
}

/// Fuzzing regression (http_stream, `fuzz/regressions/http_stream-3`): a chunked response whose
/// body starts with a byte that is no chunk size stopped the parser, and the bytes counted as
/// received while requests waited (`bytes_after_unanswered`) ran to the end of whatever chunk
/// held that byte. Now they stop at it.
#[test]
fn http_bad_chunk_size_stops_counting_at_the_same_byte_however_cut() {
    let [whole, cut] = app_whole_and_cut(include_bytes!("../../fuzz/regressions/http_stream-3"));
    assert_eq!(whole, cut);
    assert!(
        whole.contains("anomaly: Some(\"bad chunk size\")"),
        "{whole}"
    );
}

/// Fuzzing regression (tls_stream, `fuzz/regressions/tls_stream-2`): two ClientHellos in one
/// record, the record cut across segments: both are reported, at the record's end, as when the
/// record comes whole (only the last one was, when hellos waited for their record's end in a
/// single slot).
#[test]
fn tls_two_hellos_in_one_cut_record_are_both_reported() {
    let plan = fuzz_stream_plan(include_bytes!("../../fuzz/regressions/tls_stream-2"));
    let hex: Vec<(u64, Direction, String, Vec<usize>)> = plan
        .into_iter()
        .map(|(d, n, b, c)| (n, d, b.iter().map(|x| format!("{:02x}", x)).collect(), c))
        .collect();
    let frames: Vec<(u64, Direction, &str, &[usize])> = hex
        .iter()
        .map(|(n, d, h, c)| (*n, *d, h.as_str(), c.as_slice()))
        .collect();
    let [whole, cut] = tls_whole_and_cut(&frames);
    assert_eq!(whole, cut);
}

// ---------------------------------------------------------------------------------------------
// Live mode: what an open connection waits for (`awaiting_answer`, `peek`).
// ---------------------------------------------------------------------------------------------

#[test]
fn an_open_connection_waits_for_its_response_and_peek_shows_it_unanswered() {
    let mut f = Feeder::new();
    assert!(!f.flow.awaiting_answer(), "nothing asked yet");
    f.data(Orig, b"GET /slow HTTP/1.1\r\nHost: backend.lab\r\n\r\n");
    assert!(f.flow.awaiting_answer());
    let p = f.flow.peek();
    let h = http(&p);
    assert_eq!(h.unanswered.len(), 1, "{h:?}");
    assert_eq!(h.unanswered[0].target, "/slow");
    assert!(h.unanswered[0].complete_at.is_some());
    // Peeking changes nothing: the response still pairs with the request.
    f.data(Resp, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert!(!f.flow.awaiting_answer(), "answered");
    let (s, _) = f.finish();
    let h = http(&s);
    assert!(h.unanswered.is_empty(), "{h:?}");
    assert_eq!(h.responses, 1);
}

#[test]
fn an_unanswered_client_hello_is_awaited_until_the_server_answers() {
    let mut f = Feeder::new();
    let (dir, hex) = TLS12_PLAIN_ALERT[0];
    f.data(dir, &unhex(hex));
    assert!(f.flow.awaiting_answer(), "ClientHello, no ServerHello");
    assert!(tls(&f.flow.peek()).client_hello.is_some());
    let (dir, hex) = TLS12_PLAIN_ALERT[1];
    f.data(dir, &unhex(hex));
    assert!(!f.flow.awaiting_answer(), "the server's alert answers it");
}

/// The first-bytes fingerprint is the same however the stream was cut into segments (words
/// split across segments wait for their last byte), covers exactly the first `FIRST_BYTES`
/// bytes, and tells apart streams that differ in any one of them.
#[test]
fn first_bytes_fingerprint_ignores_segmentation_and_sees_every_byte() {
    let stream: Vec<u8> = (0..100u32).map(|i| (i * 37 + 11) as u8).collect();
    let fp = |cuts: &[usize], s: &[u8]| {
        let mut f = AppFlow::new(1);
        let mut at = 0;
        for &c in cuts.iter().chain([s.len()].iter()) {
            f.event(Orig, fr(1), StreamEvent::Data(&s[at..c]), &mut |_| {});
            at = c;
        }
        f.finish().first_bytes[0]
    };
    let whole = fp(&[], &stream);
    assert_eq!(whole.map(|w| w.1), Some(FIRST_BYTES as u16));
    for piece in 1..=17 {
        let cuts: Vec<usize> = (1..stream.len()).step_by(piece).collect();
        assert_eq!(fp(&cuts, &stream), whole, "pieces of {piece}");
    }
    assert_eq!(fp(&[3, 4, 60, 63, 64, 65], &stream), whole);
    // Every byte of the first 64 counts, none after them.
    for i in 0..stream.len() {
        let mut other = stream.clone();
        other[i] ^= 0x80;
        assert_eq!(fp(&[], &other) == whole, i >= FIRST_BYTES, "byte {i}");
    }
    // A shorter stream (a word left unfinished): its own length, every byte of it counts, and a
    // prefix is not the whole.
    for n in [1, 7, 8, 9, 33] {
        let short = fp(&[], &stream[..n]);
        assert_eq!(short.map(|s| s.1), Some(n as u16));
        assert_eq!(fp(&[n / 2], &stream[..n]), short);
        assert_ne!(short.map(|s| s.0), whole.map(|w| w.0));
        for i in 0..n {
            let mut other = stream[..n].to_vec();
            other[i] ^= 0x80;
            assert_ne!(fp(&[], &other), short, "{n} bytes, byte {i}");
        }
    }
}

/// A parser taken from `Spares` after a connection that ended in the middle of everything
/// (pipelined requests waiting, a header block half buffered, a chunked body, a gap) behaves as
/// a new one: the next connection's summary and events are those of a fresh `AppFlow`.
#[test]
fn spare_parsers_start_the_next_connection_afresh() {
    let messy: &[(Direction, &[u8])] = &[
        (Orig, b"GET /a HTTP/1.1\r\nHost: one\r\n\r\nGET /b HTTP/1.1\r\nHost: two\r\n\r\nPOST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345"),
        (Resp, b"HTTP/1.1 502 Bad Gateway\r\nServer: s1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nerr"),
        (Resp, b"or\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nServer: s2\r\nContent-Len"),
    ];
    let next: &[(Direction, &[u8])] = &[
        (Orig, b"GET /next HTTP/1.1\r\nHost: three\r\n\r\n"),
        (
            Resp,
            b"HTTP/1.1 503 Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
        ),
    ];
    let feed = |f: &mut AppFlow, spares: &mut Spares, msgs: &[(Direction, &[u8])]| {
        let mut events = Vec::new();
        for (i, (dir, b)) in msgs.iter().enumerate() {
            let ev = StreamEvent::Data(b);
            f.event_with(*dir, fr(i as u64 + 1), ev, spares, &mut |e| events.push(*e));
        }
        f.event_with(Resp, fr(9), StreamEvent::Gap(3), spares, &mut |e| {
            events.push(*e)
        });
        events
    };
    let mut spares = Spares::default();
    let mut first = AppFlow::with_max_pending(1, 2);
    feed(&mut first, &mut spares, messy);
    let s = first.finish_with(&mut spares);
    assert_eq!(s.http.as_ref().map(|h| h.requests), Some(3));
    assert_eq!(spares.http.len(), 1, "the parser went back to the spares");

    let mut reused = AppFlow::with_max_pending(2, 8);
    let ev_reused = feed(&mut reused, &mut spares, next);
    assert!(spares.http.is_empty(), "the spare parser was taken");
    let mut fresh = AppFlow::with_max_pending(2, 8);
    let ev_fresh = feed(&mut fresh, &mut Spares::default(), next);
    assert_eq!(ev_reused, ev_fresh);
    let (a, b) = (reused.finish(), fresh.finish());
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
}
