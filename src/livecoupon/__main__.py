from livecoupon.cli import main

main()
